"""`saliency-export verify DIR` and `saliency-export diff OLD NEW`: the promotion gate's CLI.

Thin: parse, call `exporter._verify_dir.verify_version` / `exporter._diff.diff_versions`,
print the JSON summary on stdout, exit 0 when it passed and 1 when it did not (2: usage).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from exporter._cli import configure_logging, split_list
from exporter._errors import ExportError

__all__ = ["SUBCOMMANDS", "main"]

SUBCOMMANDS = ("verify", "diff")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="saliency-export",
        description="Check an existing export version (verify) or compare two (diff) before promoting it.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    verify = sub.add_parser(
        "verify",
        allow_abbrev=False,
        help="re-verify a version directory without the Keras model",
        description="Re-verify BASE/<version>: contract, TF1 loader, C++ loader, warmup records, "
        "the report's export-files hash, and optionally the evaluation gate. Prints a JSON summary.",
    )
    verify.add_argument("dir", type=Path, help="the version directory, e.g. models/mnist/3")
    verify.add_argument(
        "--runtimes",
        help="also run every signature through these older TF C++ runtimes (e.g. 2.14,2.20; "
        "needs the compatibility cache, see `make compat`)",
    )
    verify.add_argument(
        "--evaluate",
        action="store_true",
        help="also run the evaluation gate (randomization test, deletion vs random order); "
        "needs the Keras model (--model, else the report's model.source)",
    )
    verify.add_argument("--model", help="the exported Keras model, for --evaluate")
    verify.add_argument("--images", help="evaluation images (.npy [N,H,W,C]) for --evaluate")
    verify.add_argument("--output", type=Path, help="also write the JSON summary to this file")
    verify.add_argument("-q", "--quiet", action="store_true", help="only warnings on stderr")

    diff = sub.add_parser(
        "diff",
        allow_abbrev=False,
        help="compare two versions: contract compatibility for clients and behaviour drift",
        description="Compare OLD and NEW version directories: is every signature, input and output "
        "a client of OLD uses still there, compatible (breaking/compatible/added), and how much "
        "do predictions and saliency maps drift on reference images. Prints a JSON summary.",
    )
    diff.add_argument("old", type=Path, help="the version clients use now, e.g. models/mnist/2")
    diff.add_argument("new", type=Path, help="the candidate version, e.g. build/export/3")
    diff.add_argument(
        "--images",
        help="reference images: a .npy [N,H,W,C] of model inputs, or comma-separated image "
        "files (PNG/JPEG, scaled as the export's [input] says); default: the old report's "
        "verification samples",
    )
    diff.add_argument("--num-images", type=int, default=None, help="at most this many reference images")
    diff.add_argument(
        "--allow-class-change",
        action="store_true",
        help="a changed number of classes is a documented class-names change, not breaking "
        "(both reports must record class_names)",
    )
    diff.add_argument("--min-agreement", type=float, default=0.95, help="minimum fraction of images with the same predicted class (default 0.95)")
    diff.add_argument("--max-probability-shift", type=float, default=0.2, help="maximum |Δ probability| of any class (default 0.2)")
    diff.add_argument("--max-mean-dissimilarity", type=float, default=0.5, help="maximum mean 1−SSIM of the saliency maps (default 0.5)")
    diff.add_argument("--max-dissimilarity", type=float, default=1.0, help="maximum 1−SSIM of any one map (default 1.0: off)")
    diff.add_argument("--min-mean-spearman", type=float, default=0.3, help="minimum mean Spearman correlation of |maps| (default 0.3)")
    diff.add_argument("--signatures", help="explanation signatures to compare (default: every shared one)")
    diff.add_argument("--output", type=Path, help="also write the JSON summary to this file")
    diff.add_argument("-q", "--quiet", action="store_true", help="only warnings on stderr")
    return parser


def _emit(summary: dict, output: Path | None) -> None:
    text = json.dumps(summary, indent=2, ensure_ascii=False) + "\n"
    sys.stdout.write(text)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs `verify` or `diff`; returns 0 when the check passed, 1 when not, 2 on bad usage."""
    args = _parser().parse_args(argv)
    configure_logging(args.quiet)
    try:
        result = _run(args)
    except ExportError as error:
        # Still a summary: a pipeline keeps it as the step's artifact.
        _emit({"command": args.command, "passed": False, "failures": [str(error)]}, args.output)
        print(f"saliency-export {args.command}: error: {error}", file=sys.stderr)
        return 1
    _emit(result.to_dict(), args.output)
    if not result.passed:
        print(f"saliency-export {args.command}: FAILED: {'; '.join(result.failures)}", file=sys.stderr)
    return 0 if result.passed else 1


def _run(args: argparse.Namespace) -> Any:
    if args.command == "verify":
        from exporter._verify_dir import verify_version

        return verify_version(
            args.dir,
            runtimes=split_list(args.runtimes) or (),
            evaluate=args.evaluate,
            model=args.model,
            images=args.images,
        )
    from exporter._diff import DriftThresholds, diff_versions

    return diff_versions(
        args.old,
        args.new,
        images=args.images,
        num_images=args.num_images,
        allow_class_change=args.allow_class_change,
        thresholds=DriftThresholds(
            min_agreement=args.min_agreement,
            max_probability_shift=args.max_probability_shift,
            max_mean_dissimilarity=args.max_mean_dissimilarity,
            max_dissimilarity=args.max_dissimilarity,
            min_mean_spearman=args.min_mean_spearman,
        ),
        signatures=split_list(args.signatures),
    )
