"""The server's stdout line protocol: the wire text, its parser, and its one home."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from model_server._lines import (
    PortLine,
    ReadyLine,
    StartupLines,
    format_grpc_line,
    format_ready_line,
    format_rest_line,
    join_host_port,
    parse_line,
)

ROOT = Path(__file__).resolve().parents[2]


def test_the_wire_text_is_tf_servings_port_lines_and_our_ready_line():
    # Pinned literally: tools that wait for TF Serving's lines must keep working.
    assert format_grpc_line("127.0.0.1", 8500) == "Running gRPC ModelServer at 127.0.0.1:8500 ..."
    assert format_rest_line("0.0.0.0", 8501) == "Exporting HTTP/REST API at 0.0.0.0:8501 ..."
    assert format_grpc_line("::1", 9000) == "Running gRPC ModelServer at [::1]:9000 ..."
    assert format_ready_line({"a": [1], "b": [2, 7]}) == "All models AVAILABLE: a@1 b@2,7"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Running gRPC ModelServer at 127.0.0.1:8500 ...\n", PortLine("grpc", "127.0.0.1", 8500)),
        ("Exporting HTTP/REST API at [::1]:8501 ...", PortLine("rest", "::1", 8501)),
        # Without the trailing " ..." (as readers before this module accepted).
        ("Running gRPC ModelServer at localhost:1", PortLine("grpc", "localhost", 1)),
        ("All models AVAILABLE: a@1 b@7", ReadyLine({"a": (1,), "b": (7,)})),
        ("All models AVAILABLE: a@1,2,3", ReadyLine({"a": (1, 2, 3)})),
        # TF Serving accepts any configured name; one with a space still reads back.
        ("All models AVAILABLE: my model@4 b@5", ReadyLine({"my model": (4,), "b": (5,)})),
    ],
)
def test_parse_reads_each_line_kind(line, expected):
    assert parse_line(line) == expected


def test_every_formatted_line_parses_back():
    assert parse_line(format_grpc_line("::1", 8500)) == PortLine("grpc", "::1", 8500)
    assert parse_line(format_grpc_line("::1", 8500)).address == "[::1]:8500"
    assert parse_line(format_rest_line("10.0.0.2", 0)) == PortLine("rest", "10.0.0.2", 0)
    available = {"mnist": [1, 3], "x-y.z": [10]}
    assert parse_line(format_ready_line(available)) == ReadyLine({"mnist": (1, 3), "x-y.z": (10,)})
    assert join_host_port("h", 1) == "h:1" and join_host_port("fe80::1", 2) == "[fe80::1]:2"


@pytest.mark.parametrize("line", ["", "2026-01-01 INFO loaded", "Running gRPC elsewhere", "all models available: a@1"])
def test_other_lines_are_not_protocol_lines(line):
    assert parse_line(line) is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("Running gRPC ModelServer at nowhere ...", r"Expected HOST:PORT after 'Running gRPC ModelServer at'; received the line 'Running gRPC ModelServer at nowhere \.\.\.'"),
        ("Exporting HTTP/REST API at :80", r"Expected HOST:PORT after 'Exporting HTTP/REST API at'"),
        ("All models AVAILABLE: a@1 b", r"Expected NAME@V\[,V\.\.\.\] entries after 'All models AVAILABLE:'; received 'b'"),
        ("All models AVAILABLE: a@x", r"received 'a@x'"),
    ],
)
def test_a_malformed_protocol_line_is_refused_naming_what_was_received(line, message):
    with pytest.raises(ValueError, match=message):
        parse_line(line)


def test_startup_lines_collects_ports_until_the_ready_line():
    startup = StartupLines()
    assert startup.feed("some log line") is False
    assert startup.feed(format_grpc_line("127.0.0.1", 41000)) is False
    assert startup.feed(format_rest_line("127.0.0.1", 41001)) is False
    assert (startup.grpc.port, startup.rest.port, startup.ready) == (41000, 41001, None)
    assert startup.feed(format_ready_line({"m": [1]})) is True
    assert startup.ready == ReadyLine({"m": (1,)})


def test_the_module_needs_neither_tensorflow_nor_grpc():
    # Loaded from its file, without model_server/__init__.py (which imports TensorFlow).
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('lines', {str(ROOT / 'model_server' / '_lines.py')!r})\n"
        "module = sys.modules['lines'] = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "assert module.parse_line(module.format_grpc_line('h', 1)).port == 1\n"
        "print(sorted(m for m in ('tensorflow', 'grpc', 'numpy') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_line_text_has_one_home():
    # The writer (the CLI) and the readers (ServerProcess, the examples, tests, benchmarks,
    # soak) go through model_server._lines; nobody else spells the lines.
    spelled = re.compile(r"Running gRPC ModelServer|Exporting HTTP/REST API|All models AVAILABLE")
    places = [ROOT / d for d in ("exporter", "serving_client", "model_server", "examples")]
    places += [ROOT / "tests" / d for d in ("server", "benchmarks", "compat", "examples")]
    places += [ROOT / "tests" / "soak.py"]
    offenders = []
    for place in places:
        for path in [place] if place.is_file() else sorted(place.rglob("*.py")):
            if path.name in ("_lines.py", "test_lines.py"):
                continue
            offenders += [f"{path.relative_to(ROOT)}:{n}" for n, text in enumerate(path.read_text().splitlines(), 1) if spelled.search(text)]
    assert offenders == []
