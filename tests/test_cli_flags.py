"""Every command-line tool refuses abbreviated flags instead of guessing what they meant.

argparse's default `allow_abbrev=True` read `saliency-client explain --target 127.0.0.1:8500`
as `--target-class 127.0.0.1:8500` and failed with a misleading "invalid int value".
"""

from __future__ import annotations

import argparse
import importlib

import pytest

#: (module, function returning its parser) for every console script and `python -m` tool.
PARSERS = [
    ("serving_client.cli", "_parser"),
    ("model_server.cli", "build_parser"),
    ("exporter.cli", "_parser"),
    ("exporter._gate_cli", "_parser"),
    ("exporter.evaluation.cli", "_parser"),
]


def _all_parsers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _all_parsers(sub)


@pytest.mark.parametrize(("module", "factory"), PARSERS)
def test_every_parser_and_subcommand_refuses_abbreviations(module, factory):
    parser = getattr(importlib.import_module(module), factory)()
    for each in _all_parsers(parser):
        assert each.allow_abbrev is False, f"{module}: {each.prog} accepts abbreviated flags"


def test_client_reads_target_as_an_unknown_flag_not_as_target_class(capsys):
    from serving_client.cli import _parser

    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args(
            ["explain", "x.png", "--server", "h:1", "--model", "m", "--out", "o",
             "--target", "127.0.0.1:8500"]
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --target 127.0.0.1:8500" in err
    assert "--target-class" not in err.splitlines()[-1]


def test_server_refuses_a_prefix_of_rest_api_port(capsys):
    from model_server.cli import build_parser

    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--model_name", "m", "--model_base_path", "/m", "--rest_api", "0"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --rest_api" in capsys.readouterr().err
