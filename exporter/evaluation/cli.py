"""`saliency-evaluate`: sanity checks and faithfulness scores of an export.

Prints a table on stdout (progress on stderr), writes `OUT/evaluation.json`,
`OUT/evaluation.png` and the self-contained `OUT/report.html`. Exit code 0 when every method passes, 1 when one fails a check,
2 on a usage error (bad arguments, not an export, wrong model or data).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from exporter._cli import add_unsafe_flag, configure_logging, split_list, warn_if_unsafe

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="saliency-evaluate",
        description="Model-parameter randomization test (Adebayo et al. 2018) and deletion/insertion "
        "AUC (Petsiuk et al. 2018) for every explanation signature of an export.",
    )
    parser.add_argument("export_dir", metavar="EXPORT_DIR", help="a version directory, e.g. models/mnist/1")
    parser.add_argument("--data", required=True,
                        help="held-out images: a .npy file [N,H,W,C] of model inputs (no pickles)")
    parser.add_argument("--model", help="the exported .keras model (default: model.source from the export report)")
    parser.add_argument("--num-images", type=int, default=32, help="images evaluated (default 32)")
    parser.add_argument("--steps", type=int, default=20, help="deletion/insertion steps (default 20)")
    parser.add_argument("--methods", help="comma-separated methods (default: every exported one)")
    parser.add_argument("--max-randomization-spearman", type=float, default=0.5,
                        help="fail a method whose fully randomized maps correlate more than this (default 0.5)")
    parser.add_argument("--min-deletion-gain", type=float, default=0.0,
                        help="fail a method whose deletion AUC is not this much below random order's (default 0)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random order and re-initialization")
    parser.add_argument("--out", default="evaluation", help="output directory (default ./evaluation)")
    add_unsafe_flag(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the CLI; returns the exit code (0 all pass, 1 a check failed, 2 usage error)."""
    args = _parser().parse_args(argv)
    configure_logging(args.quiet)
    warn_if_unsafe(args, args.model)
    from exporter._config import EvaluationConfig
    from exporter._errors import ExportError
    from exporter.evaluation import draw_figure, evaluate_export

    try:
        config = EvaluationConfig(
            num_images=args.num_images,
            steps=args.steps,
            max_randomization_spearman=args.max_randomization_spearman,
            min_deletion_gain_over_random=args.min_deletion_gain,
            seed=args.seed,
        )
        methods = split_list(args.methods or None)
        report = evaluate_export(
            args.export_dir,
            args.data,
            model=args.model,
            methods=methods,
            config=config,
            safe_mode=not args.unsafe_deserialization,
        )
    except ExportError as error:
        print(f"saliency-evaluate: error: {error}", file=sys.stderr)
        return 2
    out = Path(args.out)
    json_path = report.write_json(out / "evaluation.json")
    figure_path = draw_figure(report, out / "evaluation.png")
    html_path = report.write_html(out / "report.html")
    print(report.summary())
    for failure in report.failures:
        print(f"FAILED {failure}")
    print(json_path)
    print(figure_path)
    print(html_path)
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
