"""The pieces both exporter CLIs share: the unsafe-loading warning and list parsing."""

from __future__ import annotations

import argparse
import logging

import pytest

from exporter._cli import add_unsafe_flag, split_list, warn_if_unsafe


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_unsafe_flag(parser)
    return parser.parse_args(list(argv))


def test_unsafe_flag_warns_naming_the_model(caplog):
    with caplog.at_level(logging.WARNING, logger="exporter"):
        warn_if_unsafe(_args("--unsafe-deserialization"), "m.keras")
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "m.keras" in caplog.text and "safe_mode off" in caplog.text


@pytest.mark.parametrize(("argv", "model"), [((), "m.keras"), (("--unsafe-deserialization",), None)])
def test_no_warning_without_the_flag_or_without_a_model(caplog, argv, model):
    with caplog.at_level(logging.WARNING, logger="exporter"):
        warn_if_unsafe(_args(*argv), model)
    assert caplog.records == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [(None, None), ("a", ["a"]), (" a, b ,,c ", ["a", "b", "c"]), (",", [])],
)
def test_split_list_trims_and_drops_empty_items(text, expected):
    assert split_list(text) == expected
