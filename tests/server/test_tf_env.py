"""The served TF runtime defaults (model_server._tf_env) reach TensorFlow before its library loads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from model_server._tf_env import DEFAULTS, apply_defaults, child_environment

ROOT = Path(__file__).resolve().parents[2]

# Prints what the variable is and whether TF's library loaded with oneDNN on (IsMklEnabled()
# is TF's own answer: tensorflow/core/util/port.cc reads the variable once, at load).
PROBE = """
import os, sys
import {package}
from tensorflow.python.util import _pywrap_util_port
print(os.environ.get("TF_ENABLE_ONEDNN_OPTS"), _pywrap_util_port.IsMklEnabled())
"""


def _probe(package: str, value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if value is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = value
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(package=package)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise AssertionError(f"probe for {package} failed:\n{done.stderr[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("package", ["model_server", "exporter"])
def test_importing_the_package_turns_onednn_on_before_tensorflow_loads(package: str) -> None:
    assert _probe(package, None) == "1 True"


@pytest.mark.parametrize("package", ["model_server", "exporter"])
def test_a_value_the_user_set_is_kept(package: str) -> None:
    assert _probe(package, "0") == "0 False"


def test_apply_defaults_fills_only_what_is_missing() -> None:
    environ = {"TF_ENABLE_ONEDNN_OPTS": "0"}
    assert apply_defaults(environ) == {}
    assert environ == {"TF_ENABLE_ONEDNN_OPTS": "0"}
    empty: dict[str, str] = {}
    assert apply_defaults(empty) == dict(DEFAULTS)
    assert empty == dict(DEFAULTS)


def test_child_environment_applies_defaults_then_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    assert child_environment()["TF_ENABLE_ONEDNN_OPTS"] == "1"
    assert child_environment({"TF_ENABLE_ONEDNN_OPTS": "0"})["TF_ENABLE_ONEDNN_OPTS"] == "0"


@pytest.mark.integration
def test_cpp_loader_child_runs_with_the_served_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    from exporter._cpp_loader import CppRuntime

    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    with CppRuntime() as runtime:
        environ = Path(f"/proc/{runtime.pid}/environ").read_bytes().split(b"\0")
    assert b"TF_ENABLE_ONEDNN_OPTS=1" in environ
    with CppRuntime(env={"TF_ENABLE_ONEDNN_OPTS": "0"}) as runtime:
        environ = Path(f"/proc/{runtime.pid}/environ").read_bytes().split(b"\0")
    assert b"TF_ENABLE_ONEDNN_OPTS=0" in environ
