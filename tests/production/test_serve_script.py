"""configs/serve_tfserving.sh, driven with a fake `docker` so no engine is needed."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "configs" / "serve_tfserving.sh"


def fake_docker(tmp_path: Path, *, engine_up: bool) -> tuple[Path, Path]:
    """A `docker` stand-in: `info` succeeds iff engine_up; `run` records its argv."""
    log = tmp_path / "docker_calls.txt"
    docker = tmp_path / "docker"
    docker.write_text(
        "#!/usr/bin/env bash\n"
        f'if [ "$1" = info ]; then exit {0 if engine_up else 1}; fi\n'
        f'printf "%s\\n" "$@" > {shlex.quote(str(log))}\n'
    )
    docker.chmod(0o755)
    return docker, log


def export_dir(tmp_path: Path, *versions: str) -> Path:
    models = tmp_path / "models" / "mnist"
    models.mkdir(parents=True)
    for version in versions:
        (models / version).mkdir()
        (models / version / "saved_model.pb").write_bytes(b"")
    return models


def run(docker: Path, models: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER": str(docker), "MODEL_DIR": str(models)}
    return subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30, check=False
    )


def test_without_a_docker_engine_it_prints_the_command_and_a_note_and_exits_zero(tmp_path):
    docker, log = fake_docker(tmp_path, engine_up=False)
    models = export_dir(tmp_path, "1", "2")
    result = run(docker, models)
    assert result.returncode == 0, result.stderr
    assert f"source={models},target=/models/mnist" in result.stdout
    assert "--model_config_file=/configs/models.config" in result.stdout
    assert "no Docker engine" in result.stdout
    assert "versions found" in result.stdout and "1 2" in result.stdout
    assert not log.exists(), "nothing may be started without an engine"


def test_with_a_docker_engine_it_runs_exactly_the_printed_command(tmp_path):
    docker, log = fake_docker(tmp_path, engine_up=True)
    models = export_dir(tmp_path, "7")
    result = run(docker, models)
    assert result.returncode == 0, result.stderr
    argv = log.read_text().splitlines()
    assert argv[:7] == ["run", "--rm", "-p", "8500:8500", "-p", "8501:8501", "--mount"]
    assert argv[7] == f"type=bind,source={models},target=/models/mnist"
    assert argv[9] == f"type=bind,source={REPO / 'configs'},target=/configs"
    assert argv[10:12] == ["-e", f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS', '1')}"]
    assert argv[12].startswith("tensorflow/serving:")
    assert argv[13:] == [
        "--model_config_file=/configs/models.config",
        "--enable_batching=true",
        "--batching_parameters_file=/configs/batching.config",
        "--monitoring_config_file=/configs/monitoring.config",
    ]
    printed = next(line for line in result.stdout.splitlines() if " run --rm " in line)
    assert shlex.split(printed)[1:] == argv


@pytest.mark.parametrize("versions", [(), ("latest",)], ids=["empty", "non-integer-only"])
def test_without_an_integer_version_export_it_says_to_run_make_demo_and_fails(tmp_path, versions):
    docker, log = fake_docker(tmp_path, engine_up=True)
    result = run(docker, export_dir(tmp_path, *versions))
    assert result.returncode == 1
    assert "make demo" in result.stderr
    assert not log.exists()
