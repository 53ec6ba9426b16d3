"""The CLI: TF Serving's flags, the port/ready lines, SIGTERM, config-file parsing."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest

from model_server._lines import (
    GRPC_PREFIX,
    READY_PREFIX,
    REST_PREFIX,
    PortLine,
    ReadyLine,
    format_ready_line,
    parse_line,
)
from tests.server.helpers import images, predict_request

REPO = Path(__file__).resolve().parents[2]


def _reader(stream, q: queue.Queue) -> None:
    for line in iter(stream.readline, ""):
        q.put(line.rstrip("\n"))
    q.put(None)


def _wait_line(q: queue.Queue, prefix: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = q.get(timeout=max(0.05, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            raise AssertionError(f"server exited before printing {prefix!r}")
        if line.startswith(prefix):
            return line
    raise AssertionError(f"no line starting with {prefix!r} within {timeout}s")


@pytest.mark.integration
@pytest.mark.e2e
def test_cli_serves_prints_ports_and_exits_cleanly_on_sigterm(export_pool, installer, tmp_path):
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    installer(export_pool["scale1"], tmp_path / "a" / "1")
    installer(export_pool["scale2"], tmp_path / "b" / "7")
    config = tmp_path / "models.config"
    config.write_text(
        f'model_config_list {{ config {{ name: "a" base_path: "{tmp_path / "a"}" }} '
        f'config {{ name: "b" base_path: "{tmp_path / "b"}" model_version_policy {{ specific {{ versions: 7 }} }} }} }}'
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "model_server", "--port=0", "--rest_api_port=auto",
         f"--model_config_file={config}", "--file_system_poll_wait_seconds=0.5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
    errors: list[str] = []
    err_thread = threading.Thread(target=lambda: errors.extend(proc.stderr), daemon=True)
    err_thread.start()
    try:
        grpc_line = parse_line(_wait_line(lines, GRPC_PREFIX, 90))
        rest_line = parse_line(_wait_line(lines, REST_PREFIX, 10))
        ready = _wait_line(lines, READY_PREFIX, 20)
        assert ready == format_ready_line({"a": [1], "b": [7]})
        assert parse_line(ready) == ReadyLine({"a": (1,), "b": (7,)})
        assert grpc_line == PortLine("grpc", "127.0.0.1", grpc_line.port) and grpc_line.port > 0
        assert rest_line == PortLine("rest", "127.0.0.1", rest_line.port) and rest_line.port > 0
        with grpc.insecure_channel(grpc_line.address) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            response = stub.Predict(predict_request(name="b", images=images(1)), timeout=20)
            assert response.model_spec.version.value == 7
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    err_thread.join(timeout=5)
    log = "".join(errors)
    assert "Successfully loaded servable version {name: a version: 1}" in log
    assert "Done unloading servable version {name: b version: 7}" in log


def test_cli_requires_exactly_one_model_source(capsys):
    from model_server.cli import main

    assert main(["--port=0"]) == 2
    assert "expected exactly one of --model_base_path" in capsys.readouterr().err


def test_cli_rejects_a_bad_port():
    from model_server.cli import main

    with pytest.raises(SystemExit) as info:
        main(["--port=http", "--model_base_path=/x"])
    assert info.value.code == 2


def test_port_flags_map_to_options():
    from model_server.cli import build_parser, options_from_args

    args = build_parser().parse_args(["--port=auto", "--rest_api_port=0", "--model_base_path=/m", "--model_name=x"])
    options = options_from_args(args)
    assert (options.port, options.rest_api_port, options.host) == (0, None, "127.0.0.1")
    assert options.models[0].name == "x" and options.models[0].base_path == Path("/m")
    args = build_parser().parse_args(["--rest_api_port=auto", "--model_base_path=/m"])
    options = options_from_args(args)
    assert (options.port, options.rest_api_port) == (8500, 0)
    assert options.models[0].name == "default"


def test_model_config_text_parses_policies_and_labels():
    from model_server import VersionPolicy, parse_model_config_text

    configs = parse_model_config_text(
        """
        model_config_list {
          config { name: "a" base_path: "/a" model_version_policy { latest { num_versions: 2 } } }
          config { name: "b" base_path: "/b" model_version_policy { specific { versions: 1 versions: 3 } }
                   version_labels { key: "stable" value: 1 } }
          config { name: "c" base_path: "/c" model_version_policy { all {} } }
          config { name: "d" base_path: "/d" }
        }
        """
    )
    assert [c.policy for c in configs] == [
        VersionPolicy("latest", 2),
        VersionPolicy("specific", versions=(1, 3)),
        VersionPolicy("all"),
        VersionPolicy("latest", 1),
    ]
    assert dict(configs[1].version_labels) == {"stable": 1}
    assert configs[0].policy.aspired([1, 2, 3]) == {2, 3}
    assert configs[1].policy.aspired([1, 2]) == {1}
    assert configs[2].policy.aspired([4, 5]) == {4, 5}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model_config_list { config { name: \"a\" } }", "has no base_path"),
        ("model_config_list { config { name: \"a\" base_path: \"/a\" } config { name: \"a\" base_path: \"/b\" } }",
         "configured twice"),
        ("model_config_list { config { name: \"a\" base_path: \"/a\" model_platform: \"pytorch\" } }",
         "only serves `tensorflow`"),
        ("not a config", "not a text-format ModelServerConfig"),
        ("", "expected a `model_config_list"),
    ],
)
def test_model_config_errors_say_what_is_wrong(text, message):
    from model_server import parse_model_config_text

    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        parse_model_config_text(text)
