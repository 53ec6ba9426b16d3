"""``saliency-client``: ask a served model for predictions and saliency overlays.

Thin on purpose: parse arguments, call :class:`serving_client.ServingClient` and
:mod:`serving_client.render`, print. Expected failures (server errors, unreadable files) print
one line on stderr and exit 1; usage errors exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import _inputs, contract, render
from ._client import ServingClient, signature_for
from ._exceptions import ServingError
from ._results import Explanation, ModelMetadata

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
    if args.command == "ui":
        return _ui(args)
    try:
        if hasattr(args, "alpha"):
            _resolve_drawing(args)
    except (OSError, ValueError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2 if isinstance(error, _UsageError) else 1
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


def _ui(args: argparse.Namespace) -> int:
    """Serve the browser viewer (the ``ui`` extra) until Ctrl-C."""
    try:
        from . import ui
    except ImportError as error:
        print(
            f"{PROG}: error: the viewer needs the ui extra ({error.name} is missing); "
            "install it with: pip install 'saliency-serving[ui]'",
            file=sys.stderr,
        )
        return 1
    try:
        class_names = None
        if args.class_names is not None:
            lines = Path(args.class_names).read_text(encoding="utf-8").splitlines()
            class_names = tuple(line.strip() for line in lines if line.strip())
        return ui.serve(
            server=args.server,
            model=args.model,
            host=args.host,
            port=args.port,
            allow_remote=args.allow_remote,
            extra_hosts=args.allowed_host,
            timeout=args.timeout,
            max_upload_bytes=round(args.max_upload_mb * 1024 * 1024),
            class_names=class_names,
        )
    except (OSError, ValueError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1


def _explain(client: ServingClient, args: argparse.Namespace) -> int:
    signature = signature_for(args.method, args.signature)
    if args.method is not None and args.signature is None:
        _check_methods(client, [args.method], "--method")
    loaded = _load_images(client, args.images, signature)
    images = loaded.shown
    parameters = _request_parameters(args)
    several = {"classes": args.classes, "top_k": args.top_k}
    several = {key: value for key, value in several.items() if value is not None}
    explanations = [
        _regions(client.explain(batch, args.target_class, signature=signature, **parameters, **several), batch)
        for batch in loaded.batches()
    ]
    out_dir = Path(args.out)
    used: set[Path] = set()
    index = 0
    for explanation in explanations:
        count = explanation.classes_per_image
        # One PNG per image and class: a class axis is drawn one column at a time.
        columns = [explanation] if count is None else [explanation.for_class(k) for k in range(count)]
        for row in range(explanation.predicted_class.shape[0]):
            path_in, image = args.images[index], images[index]
            index += 1
            for column in columns:
                target = int(column.target_class[row])
                name = signature if count is None else f"{signature}_class{target}"
                picture = _overlay(image, column, row, args)
                written = render.save_png(picture, _unique(out_dir, path_in, name, used))
                predicted = int(column.predicted_class[row])
                print(
                    f"{path_in}\tpredicted={predicted}"
                    f"\tprobability={float(column.probabilities[row, predicted]):.4f}"
                    f"\ttarget={target}\toverlay={written}"
                )
    return 0


def _class_list(text: str) -> list[int]:
    """``--classes 3,5`` → [3, 5] (negative values rank: ``--classes=-1,-2``)."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated class ids such as 3,5; got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected at least one class id; got {text!r}")
    return values


def _request_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The per-request parameters given (``--steps``, ``--samples``, ``--noise``, ``--baseline``)."""
    given: dict[str, Any] = {
        "steps": args.steps,
        "samples": args.samples,
        "noise": args.noise,
    }
    if args.baseline is not None:
        path = Path(args.baseline)
        if path.suffix.lower() != ".npy":
            raise ValueError(f"--baseline {path}: expected a .npy file of baselines in the model's input space.")
        try:
            given["baseline"] = np.load(path, allow_pickle=False).astype(np.float32)
        except (ValueError, OSError, EOFError) as error:
            raise ValueError(f"--baseline {path}: cannot read it as a .npy array: {error}") from None
    return {name: value for name, value in given.items() if value is not None}


def _check_methods(client: ServingClient, methods: Sequence[str], flag: str) -> None:
    """Refuse methods the model's signatures do not serve, listing the ones they do."""
    offered = client.methods()
    missing = [name for name in methods if name not in offered]
    if missing:
        raise ValueError(
            f"{flag}: the model does not export {', '.join(missing)} (no signature "
            f"{', '.join(repr(signature_for(name)) for name in missing)}); it offers "
            f"{', '.join(offered) or 'no explanation method'}."
        )


def _compare(client: ServingClient, args: argparse.Namespace) -> int:
    if args.methods is None:
        methods = list(client.methods())
    else:
        methods = [name.strip() for name in args.methods.split(",") if name.strip()]
        if not methods:
            raise ValueError(f"--methods: got {args.methods!r}; expected a comma-separated list of method names.")
        _check_methods(client, methods, "--methods")
    loaded = _load_images(client, [args.image], signature_for(methods[0]))
    image, sent = loaded.shown[0], loaded.batches()[0]
    cells, titles = [image], ["input"]
    for method in methods:
        explanation = _regions(client.explain(sent, args.target_class, method=method), sent)
        cells.append(_overlay(image, explanation, 0, args))
        predicted, target = int(explanation.predicted_class[0]), int(explanation.target_class[0])
        titles.append(f"{method} (class {target})")
        print(
            f"{method}\tsignature={explanation.signature_name}\tpredicted={predicted}"
            f"\tprobability={float(explanation.probabilities[0, predicted]):.4f}\ttarget={target}"
        )
    picture = render.grid([cells], column_labels=titles, scale=args.scale)
    written = render.save_png(picture, Path(args.out) / f"{Path(args.image).stem}_compare.png")
    print(f"grid={written}")
    return 0


def _regions(explanation: Explanation, sent: Any) -> Explanation:
    """XRAI's answer is its IG attributions; its region map is made here (serving_client.xrai)."""
    if explanation.method != "xrai":
        return explanation
    from .xrai import xrai_explanation

    try:
        return xrai_explanation(explanation, sent)
    except ImportError as error:
        raise ValueError(
            f"XRAI's regions need scikit-image ({error.name} is missing): pip install "
            "'saliency-serving[xrai]'; the served IG attributions alone are --method "
            "integrated_gradients."
        ) from None


def _overlay(image: np.ndarray, explanation: Explanation, row: int, args: argparse.Namespace) -> np.ndarray:
    """The overlay of one image, from the signed IG attributions when a polarity needs a sign."""
    if image.shape[:2] != explanation.saliency.shape[1:]:
        # image_bytes exports resize in the graph: draw on the picture at the map's size.
        image = render._resize(image, *explanation.saliency.shape[1:])
    if args.polarity == "positive":
        values = explanation.saliency[row]
    elif explanation.attributions is not None:
        values = render.signed_map(explanation.attributions[row])
    else:
        raise ValueError(
            f"--polarity {args.polarity} needs signed attributions; {explanation.signature_name!r} "
            "returns only a [0, 1] saliency map (use --method integrated_gradients)."
        )
    return render.overlay(
        image,
        values,
        colormap=args.colormap,
        alpha=args.alpha,
        clip_percentile=args.clip_percentile,
        clip_percentiles=args.clip_percentiles,
        polarity=args.polarity,
        overlay_type=args.overlay_type,
        visualization_type=args.visualization_type,
    )


class _UsageError(ValueError):
    """Flags that contradict each other (exit 2, as argparse's own usage errors)."""


def _resolve_drawing(args: argparse.Namespace) -> None:
    """One set of drawing options: explicit flags, else the --visualization file, else defaults.

    Sets ``args.polarity``, ``args.overlay_type``, ``args.visualization_type``,
    ``args.colormap`` and ``args.clip_percentiles`` (``args.clip_percentile`` stays for the
    renderer's single-percentile form).
    """
    bounds = (args.clip_percent_lowerbound, args.clip_percent_upperbound)
    if any(b is not None for b in bounds) and (args.clip_percentile is not None or args.clip_percentiles):
        raise _UsageError(
            "--clip-percent-lowerbound/--clip-percent-upperbound are Vertex's names of "
            "--clip-percentiles LOW,HIGH; give one spelling, not both."
        )
    options: dict[str, Any] = {
        "polarity": "positive",
        "overlay_type": "original",
        "visualization_type": "pixels",
        "colormap": None,
        "clip_percentiles": None,
    }
    if args.visualization is not None:
        from .visualization import Visualization

        path = Path(args.visualization)
        try:
            block = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as error:
            raise ValueError(f"--visualization {path}: not JSON: {error}") from None
        if isinstance(block, dict) and set(block) == {"visualization"}:
            block = block["visualization"]
        method = getattr(args, "method", None) or ""
        resolved = Visualization.from_vertex(block, method=method, where=f"{path}: visualization")
        options.update(resolved.render_options())
    for name in ("polarity", "overlay_type", "visualization_type", "colormap"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    if args.clip_percentiles is not None or args.clip_percentile is not None:
        options["clip_percentiles"] = args.clip_percentiles
    elif any(b is not None for b in bounds):
        low, high = options["clip_percentiles"] or (0.0, 100.0)
        options["clip_percentiles"] = (
            low if bounds[0] is None else bounds[0],
            high if bounds[1] is None else bounds[1],
        )
    for name, value in options.items():
        setattr(args, name, value)


def _percentiles(text: str) -> tuple[float, float]:
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH such as 1,99; got {text!r}") from error
    return low, high


def _predict(client: ServingClient, args: argparse.Namespace) -> int:
    index = 0
    for batch in _load_images(client, args.images, args.signature).batches():
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


@dataclass(frozen=True)
class _Loaded:
    """The images as drawn (float32 [H, W, C] in [0, 1] for pictures) and as sent."""

    shown: list[np.ndarray]
    sent: list[Any]
    input_format: str

    def batches(self) -> list[Any]:
        if self.input_format == _inputs.IMAGE_BYTES:
            return [self.sent]  # the graph decodes and resizes each image: any sizes batch
        return _batches(self.sent)


def _load_images(client: ServingClient, paths: Sequence[str], signature: str) -> _Loaded:
    """Read the files for ``signature``'s input format (the metadata call reads both).

    float32 exports get :func:`render.load_image`'s arrays; uint8 exports the same pixels as
    0..255 (``round(255 * x)``, refused by the client when a ``.npy`` holds values outside
    [0, 1]); image_bytes exports each picture file's bytes as they are, and a ``.npy``'s
    pixels PNG-encoded by the client.
    """
    metadata = client.metadata()
    input_format = client.input_format(signature)
    if input_format == _inputs.IMAGE_BYTES:
        shown = [render.load_image(path) for path in paths]
        sent: list[Any] = [
            _pixels(image) if Path(path).suffix.lower() == ".npy" else path
            for path, image in zip(paths, shown, strict=True)
        ]
        return _Loaded(shown, sent, input_format)
    expected = _expected_shape(metadata)
    shown = [render.load_image(path, expected_shape=expected) for path in paths]
    sent = [_pixels(image) for image in shown] if input_format == _inputs.UINT8 else list(shown)
    return _Loaded(shown, sent, input_format)


def _pixels(image: np.ndarray) -> np.ndarray:
    """[0, 1] floats as the 0..255 pixels they came from; values outside stay out of range."""
    return np.rint(image.astype(np.float64) * 255.0)


def _expected_shape(metadata: ModelMetadata) -> tuple[int, int, int] | None:
    """(H, W, C) of serving_default's ``images`` input, or None when not fully known."""
    signature = metadata.signatures.get(contract.SERVING_DEFAULT)
    spec = signature.inputs.get(contract.IMAGES) if signature is not None else None
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
    common = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    common.add_argument("--server", required=True, metavar="HOST:PORT", help="gRPC address")
    common.add_argument("--model", required=True, metavar="NAME", help="served model name")
    which = common.add_mutually_exclusive_group()
    which.add_argument("--version", type=int, metavar="N", help="model version")
    which.add_argument("--version-label", metavar="L", help="model version label")
    common.add_argument(
        "--timeout", type=float, default=10.0, metavar="S", help="deadline per call (s)"
    )

    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__.splitlines()[0], allow_abbrev=False
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    drawing = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    drawing.add_argument("--target-class", type=int, metavar="N", help="class to explain")
    vertex = drawing.add_argument_group(
        "drawing (Vertex Explainable AI's visualization names; docs/vertex-migration.md)"
    )
    vertex.add_argument(
        "--visualization",
        metavar="FILE",
        help="a Vertex visualization JSON block (or {\"visualization\": {...}}); its missing "
        "fields take Vertex's defaults, and the flags below override it",
    )
    vertex.add_argument(
        "--visualization-type",
        type=str.lower,
        choices=render.VISUALIZATION_TYPES,
        help="pixels (default): color each pixel; outlines: outline the regions above the lower "
        "clip bound (Vertex's PIXELS, OUTLINES)",
    )
    vertex.add_argument(
        "--colormap",
        "--color-map",
        dest="colormap",
        type=str.lower,
        choices=render.COLORMAPS,
        help="default inferno, or pink_green with --polarity both",
    )
    vertex.add_argument("--alpha", type=float, default=0.5, help="heatmap weight in [0, 1]")
    clipping = vertex.add_mutually_exclusive_group()
    clipping.add_argument(
        "--clip-percentile", type=float, metavar="P", help="clip saliency above this percentile"
    )
    clipping.add_argument(
        "--clip-percentiles",
        type=_percentiles,
        metavar="LOW,HIGH",
        help="hide values below the LOW percentile, clip above the HIGH one",
    )
    vertex.add_argument(
        "--clip-percent-lowerbound",
        type=float,
        metavar="LOW",
        help="Vertex's name of --clip-percentiles' LOW (default 0)",
    )
    vertex.add_argument(
        "--clip-percent-upperbound",
        type=float,
        metavar="HIGH",
        help="Vertex's name of --clip-percentiles' HIGH (default 100)",
    )
    vertex.add_argument(
        "--polarity",
        type=str.lower,
        choices=render.POLARITIES,
        help="positive (default); negative/both draw the signed IG attributions",
    )
    vertex.add_argument(
        "--overlay-type",
        type=str.lower,
        choices=(*render.OVERLAY_TYPES, *render.OVERLAY_ALIASES),
        help="original (default), grayscale, mask_black (mask), none: the map alone",
    )
    drawing.add_argument(
        "--out", required=True, metavar="DIR", help="where to write the PNG(s)"
    )

    explain = commands.add_parser(
        "explain",
        allow_abbrev=False,
        parents=[common, drawing],
        help="write a saliency overlay PNG per image",
    )
    explain.add_argument("images", nargs="+", metavar="IMAGE", help="PNG, JPEG or .npy")
    explain.add_argument(
        "--method",
        help="explanation method, one the model's signatures serve (default: vanilla)",
    )
    explain.add_argument("--signature", help="explanation signature by name (default: explain)")
    request = explain.add_argument_group(
        "per-request parameters (default: the export's; the method must take them)"
    )
    request.add_argument(
        "--steps", type=int, metavar="N", help="path intervals (integrated_gradients, blur/guided IG)"
    )
    request.add_argument(
        "--samples", type=int, metavar="N", help="noisy copies averaged (smoothgrad; SmoothGrad inside IG)"
    )
    request.add_argument(
        "--noise", type=float, metavar="F", help="noise sigma as a fraction of the input range"
    )
    request.add_argument(
        "--baseline",
        metavar="FILE.npy",
        help="IG baselines in the model's input space: [H,W,C] for all images, [B,H,W,C] one per "
        "image, or [B,N,H,W,C] N per image (averaged)",
    )
    several = explain.add_argument_group(
        "several classes per image (one PNG per image and class; not with --target-class)"
    ).add_mutually_exclusive_group()
    several.add_argument(
        "--classes",
        type=_class_list,
        metavar="C1,C2,...",
        help="classes to explain for every image; -j is the j-th most probable (write --classes=-1,-2)",
    )
    several.add_argument("--top-k", type=int, metavar="K", help="explain each image's K most probable classes")
    explain.set_defaults(run=_explain)

    compare = commands.add_parser(
        "compare",
        allow_abbrev=False,
        parents=[common, drawing],
        help="one PNG: the image and each method's overlay side by side",
    )
    compare.add_argument("image", metavar="IMAGE", help="PNG, JPEG or .npy")
    compare.add_argument(
        "--methods",
        metavar="A,B,...",
        help="comma-separated methods (default: every method the model exports)",
    )
    compare.add_argument("--scale", type=int, default=4, help="upscale factor of the cells")
    compare.set_defaults(run=_compare)

    predict = commands.add_parser(
        "predict", allow_abbrev=False, parents=[common], help="print predicted classes"
    )
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="PNG, JPEG or .npy")
    predict.add_argument("--signature", default=contract.SERVING_DEFAULT)
    predict.set_defaults(run=_predict)

    metadata = commands.add_parser(
        "metadata", allow_abbrev=False, parents=[common], help="print the signatures"
    )
    metadata.set_defaults(run=_metadata)
    status = commands.add_parser(
        "status", allow_abbrev=False, parents=[common], help="print version states"
    )
    status.set_defaults(run=_status)

    viewer = commands.add_parser(
        "ui",
        allow_abbrev=False,
        help="a local web page: drop images, see each method's map (needs the ui extra)",
    )
    viewer.add_argument("--server", required=True, metavar="HOST:PORT", help="gRPC address")
    viewer.add_argument("--model", metavar="NAME", help="model the page opens with")
    viewer.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: loopback only)"
    )
    viewer.add_argument("--port", type=int, default=8080, help="port to listen on (0: any free)")
    viewer.add_argument(
        "--allow-remote",
        action="store_true",
        help="permit a --host beyond loopback (the viewer has no authentication)",
    )
    viewer.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME[:PORT]",
        help="another Host name the page is opened by (repeatable)",
    )
    viewer.add_argument(
        "--timeout", type=float, default=30.0, metavar="S", help="deadline per gRPC call (s)"
    )
    viewer.add_argument(
        "--max-upload-mb", type=float, default=8.0, metavar="MB", help="largest image accepted"
    )
    viewer.add_argument(
        "--class-names",
        metavar="FILE",
        help="class names, one per line (the export's assets/class_names.txt)",
    )
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
