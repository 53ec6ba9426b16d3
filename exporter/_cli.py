"""What the exporter's command-line tools share: logging, the unsafe-loading flag, lists."""

from __future__ import annotations

import argparse
import logging
import sys

__all__ = ["add_unsafe_flag", "configure_logging", "split_list", "warn_if_unsafe"]


def configure_logging(quiet: bool) -> None:
    """Progress (INFO) on stderr, or only warnings with `quiet`; stdout stays for results."""
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # TensorFlow gives its logger a handler of its own when it is imported before logging
    # is configured (as here), and the record then propagates to ours as well: every TF
    # line was printed twice. Drop TF's handler; its records reach stderr once, via ours.
    tf_logger = logging.getLogger("tensorflow")
    for handler in list(tf_logger.handlers):
        tf_logger.removeHandler(handler)


def add_unsafe_flag(parser: argparse.ArgumentParser) -> None:
    """`--unsafe-deserialization`: load Keras models with safe_mode off."""
    parser.add_argument(
        "--unsafe-deserialization",
        action="store_true",
        help="load the model with Keras safe_mode off (allows Lambda layers: arbitrary code!)",
    )


def warn_if_unsafe(args: argparse.Namespace, model: object) -> None:
    """Says, every time, that a model is about to be loaded with its code allowed to run."""
    if args.unsafe_deserialization and model is not None:
        logging.getLogger("exporter").warning(
            "Loading %s with safe_mode off: Lambda layers and custom code will run.", model
        )


def split_list(text: str | None) -> list[str] | None:
    """`"a, b,,c"` → `["a", "b", "c"]`; None stays None."""
    if text is None:
        return None
    return [item.strip() for item in text.split(",") if item.strip()]
