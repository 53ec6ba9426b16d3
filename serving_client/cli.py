"""``saliency-client``: ask a served model for predictions and saliency overlays.

Thin on purpose: parse arguments, call :class:`serving_client.ServingClient` and
:mod:`serving_client.render`, print. Expected failures (server errors, unreadable files) print
one line on stderr and exit 1; usage errors exit 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import render
from ._client import ServingClient
from ._exceptions import ServingError
from ._results import ModelMetadata

PROG = "saliency-client"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI.

    Args:
        argv: arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        0 on success, 1 for server or file errors, 2 for usage errors.
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits on --help (0) and usage errors (2)
        return int(exit_.code or 0)
    try:
        with ServingClient(
            args.server,
            args.model,
            version=args.version,
            version_label=args.version_label,
            timeout=args.timeout,
        ) as client:
            return args.run(client, args)
    except (ServingError, OSError, ValueError, TypeError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1


def _explain(client: ServingClient, args: argparse.Namespace) -> int:
    images = _load_images(client, args.images)
    explanations = [
        client.explain(batch, args.target_class, signature=args.signature)
        for batch in _batches(images)
    ]
    out_dir = Path(args.out)
    used: set[Path] = set()
    index = 0
    for explanation in explanations:
        for row in range(explanation.saliency.shape[0]):
            path_in, image = args.images[index], images[index]
            index += 1
            picture = render.overlay(
                image,
                explanation.saliency[row],
                colormap=args.colormap,
                alpha=args.alpha,
                clip_percentile=args.clip_percentile,
            )
            written = render.save_png(picture, _unique(out_dir, path_in, args.signature, used))
            predicted = int(explanation.predicted_class[row])
            print(
                f"{path_in}\tpredicted={predicted}"
                f"\tprobability={float(explanation.probabilities[row, predicted]):.4f}"
                f"\ttarget={int(explanation.target_class[row])}\toverlay={written}"
            )
    return 0


def _predict(client: ServingClient, args: argparse.Namespace) -> int:
    images = _load_images(client, args.images)
    index = 0
    for batch in _batches(images):
        prediction = client.predict(batch, signature=args.signature)
        for row in range(prediction.predicted_class.shape[0]):
            predicted = int(prediction.predicted_class[row])
            probability = float(prediction.probabilities[row, predicted])
            print(f"{args.images[index]}\tpredicted={predicted}\tprobability={probability:.4f}")
            index += 1
    return 0


def _metadata(client: ServingClient, args: argparse.Namespace) -> int:
    metadata = client.metadata()
    print(f"model {metadata.model_name} version {metadata.model_version}")
    for signature in metadata.signatures.values():
        print(f"signature {signature.name} ({signature.method_name})")
        for role, specs in (("input", signature.inputs), ("output", signature.outputs)):
            for spec in specs.values():
                shape = "unknown" if spec.shape is None else _format_shape(spec.shape)
                print(f"  {role:<6} {spec.name} {spec.dtype} {shape}")
    return 0


def _status(client: ServingClient, args: argparse.Namespace) -> int:
    for entry in client.status():
        line = f"version {entry.version}\t{entry.state}\t{entry.error_code}"
        print(line + (f"\t{entry.error_message}" if entry.error_message else ""))
    return 0


def _load_images(client: ServingClient, paths: Sequence[str]) -> list[np.ndarray]:
    expected = _expected_shape(client.metadata())
    return [render.load_image(path, expected_shape=expected) for path in paths]


def _expected_shape(metadata: ModelMetadata) -> tuple[int, int, int] | None:
    """(H, W, C) of serving_default's ``images`` input, or None when not fully known."""
    signature = metadata.signatures.get("serving_default")
    spec = signature.inputs.get("images") if signature is not None else None
    if spec is None or spec.shape is None or len(spec.shape) != 4:
        return None
    height, width, channels = spec.shape[1:]
    if height is None or width is None or channels not in (1, 3):
        return None
    return (height, width, channels)


def _batches(images: list[np.ndarray]) -> list[np.ndarray]:
    """One batch when all images share a shape (the usual case), else one call per image."""
    if len({image.shape for image in images}) == 1:
        return [np.stack(images)]
    return [image[np.newaxis] for image in images]


def _unique(out_dir: Path, source: str, signature: str, used: set[Path]) -> Path:
    stem = Path(source).stem
    path = out_dir / f"{stem}_{signature}.png"
    counter = 1
    while path in used:
        path = out_dir / f"{stem}_{signature}_{counter}.png"
        counter += 1
    used.add(path)
    return path


def _format_shape(shape: tuple[int | None, ...]) -> str:
    return "[" + ", ".join("?" if size is None else str(size) for size in shape) + "]"


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--server", required=True, metavar="HOST:PORT", help="gRPC address")
    common.add_argument("--model", required=True, metavar="NAME", help="served model name")
    which = common.add_mutually_exclusive_group()
    which.add_argument("--version", type=int, metavar="N", help="model version")
    which.add_argument("--version-label", metavar="L", help="model version label")
    common.add_argument(
        "--timeout", type=float, default=10.0, metavar="S", help="deadline per call (s)"
    )

    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    explain = commands.add_parser(
        "explain", parents=[common], help="write a saliency overlay PNG per image"
    )
    explain.add_argument("images", nargs="+", metavar="IMAGE", help="PNG, JPEG or .npy")
    explain.add_argument("--target-class", type=int, metavar="N", help="class to explain")
    explain.add_argument("--signature", default="explain", help="explanation signature")
    explain.add_argument("--colormap", default="inferno", choices=render.COLORMAPS)
    explain.add_argument("--alpha", type=float, default=0.5, help="heatmap weight in [0, 1]")
    explain.add_argument(
        "--clip-percentile", type=float, metavar="P", help="clip saliency above this percentile"
    )
    explain.add_argument("--out", required=True, metavar="DIR", help="where to write overlays")
    explain.set_defaults(run=_explain)

    predict = commands.add_parser("predict", parents=[common], help="print predicted classes")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="PNG, JPEG or .npy")
    predict.add_argument("--signature", default="serving_default")
    predict.set_defaults(run=_predict)

    metadata = commands.add_parser("metadata", parents=[common], help="print the signatures")
    metadata.set_defaults(run=_metadata)
    status = commands.add_parser("status", parents=[common], help="print version states")
    status.set_defaults(run=_status)
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
