"""`saliency-export` as a user runs it, and the export as `saved_model_cli` sees it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.exporter.helpers import INPUT_SHAPE, fused_softmax_model

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def _run(*args: str, tool: str = "saliency-export") -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / tool), *args], capture_output=True, text=True, env=ENV, timeout=300)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "model.keras"
    fused_softmax_model().save(path)
    return path


@pytest.fixture(scope="module")
def exported(model_file, tmp_path_factory):
    base = tmp_path_factory.mktemp("cli_models")
    report = base.parent / "report.json"
    result = _run("--model", str(model_file), "--output", str(base), "--name", "tiny", "--report", str(report))
    return base, result, report


def test_cli_prints_the_version_path_last_and_exits_zero(exported):
    base, result, report = exported
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(base / "1")
    assert (base / "1" / "saved_model.pb").is_file()
    assert report.is_file()


def test_cli_refuses_to_overwrite_an_existing_version(exported, model_file):
    base, _, _ = exported
    result = _run("--model", str(model_file), "--output", str(base), "--version", "1")
    assert result.returncode == 1
    assert "already exists" in result.stderr and "never overwrite" in result.stderr
    assert sorted(p.name for p in base.iterdir()) == ["1"]


def test_cli_reports_an_unexplainable_model_with_the_logits_layer_hint(tmp_path):
    inputs = keras.Input(INPUT_SHAPE)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="relu")(keras.layers.Flatten()(inputs)))
    model.save(tmp_path / "relu.keras")
    result = _run("--model", str(tmp_path / "relu.keras"), "--output", str(tmp_path / "out"))
    assert result.returncode == 1
    assert "--logits-layer" in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_cli_names_the_bad_config_key(tmp_path, model_file):
    config = tmp_path / "bad.toml"
    config.write_text("[saliency]\nreduktion = 'max'\n")
    result = _run("--model", str(model_file), "--output", str(tmp_path / "out"), "--config", str(config))
    assert result.returncode == 1
    assert "Unknown key saliency.reduktion" in result.stderr


def test_cli_reports_a_missing_model_file(tmp_path):
    result = _run("--model", str(tmp_path / "nope.keras"), "--output", str(tmp_path / "out"))
    assert result.returncode == 1 and "does not exist" in result.stderr


def test_saved_model_cli_shows_both_signatures_and_runs_explain(exported, tmp_path):
    base, _, _ = exported
    shown = _run("show", "--all", "--dir", str(base / "1"), tool="saved_model_cli")
    assert shown.returncode == 0, shown.stderr
    for needle in ("signature_def['serving_default']", "signature_def['explain']", "inputs['target_class']", "outputs['saliency']"):
        assert needle in shown.stdout
    x = np.random.default_rng(0).random((2, *INPUT_SHAPE), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    ran = _run(
        "run", "--dir", str(base / "1"), "--tag_set", "serve", "--signature_def", "explain",
        "--inputs", f"images={tmp_path / 'x.npy'}", tool="saved_model_cli",
    )
    assert ran.returncode == 0, ran.stderr
    assert "Result for output key saliency" in ran.stdout
    assert "Result for output key logits" in ran.stdout
