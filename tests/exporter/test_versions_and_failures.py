"""Versioned, atomic publishing: never overwrite, never leave a partial directory."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from exporter import (
    ExportConfig,
    SaliencyExporter,
    UnsupportedModelError,
    VerificationError,
    VersionExistsError,
    export_model,
)
from exporter import _export as export_module
from tests.exporter.helpers import fused_softmax_model

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def exporter():
    return SaliencyExporter(fused_softmax_model(), ExportConfig(warmup_batch_sizes=(1,)))


def _entries(base):
    return sorted(p.name for p in base.iterdir())


def test_versions_count_up_from_one_and_ignore_non_numeric_dirs(exporter, tmp_path):
    (tmp_path / "notes").mkdir()
    assert exporter.write(tmp_path).version == 1
    assert exporter.write(tmp_path).version == 2
    assert exporter.write(tmp_path, 7).version == 7
    assert exporter.write(tmp_path).version == 8
    assert _entries(tmp_path) == ["1", "2", "7", "8", "notes"]


def test_existing_version_is_never_overwritten(exporter, tmp_path):
    exporter.write(tmp_path, 3)
    marker = tmp_path / "3" / "saved_model.pb"
    before = marker.read_bytes()
    with pytest.raises(VersionExistsError, match=r"3 already exists.*next free: 4"):
        exporter.write(tmp_path, 3)
    assert marker.read_bytes() == before
    assert _entries(tmp_path) == ["3"]


def test_failure_mid_write_leaves_nothing_behind(exporter, tmp_path, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("disk full (injected)")

    # Fails after the SavedModel and warmup file are on disk in the staging directory.
    monkeypatch.setattr(export_module, "write_report", explode)
    with pytest.raises(RuntimeError, match="injected"):
        exporter.write(tmp_path)
    assert _entries(tmp_path) == []


def test_failed_verification_publishes_nothing(tmp_path):
    # Naming a layer whose outputs are not what the model's softmax consumes makes the
    # exported probabilities disagree with the model: verification must catch it.
    inputs = keras.Input((4, 4, 1))
    first = keras.layers.Dense(3, name="first")(keras.layers.Flatten()(inputs))
    second = keras.layers.Dense(3, name="second")(first)
    model = keras.Model(inputs, keras.layers.Softmax()(second))
    with pytest.raises(VerificationError, match="probabilities"):
        export_model(model, tmp_path, config=ExportConfig(logits_layer="first", warmup_batch_sizes=(1,)))
    assert _entries(tmp_path) == []


def test_named_logits_layer_must_match_the_class_count(tmp_path):
    with pytest.raises(UnsupportedModelError, match="outputs 48 values but the model predicts 4 classes"):
        export_model(fused_softmax_model(), tmp_path, config=ExportConfig(logits_layer="flatten"))
    assert _entries(tmp_path) == []


def test_export_model_accepts_a_keras_file_and_reports(tmp_path):
    model = fused_softmax_model()
    model_path = tmp_path / "m.keras"
    model.save(model_path)
    report = tmp_path / "report.json"
    path = export_model(model_path, tmp_path / "models", version=5, report_path=report)
    assert path == tmp_path / "models" / "5"
    import json

    data = json.loads(report.read_text())
    assert data["model"]["hash"].startswith("sha256:") and len(data["model"]["hash"]) == 71
    assert data["model"]["logits"] == {"kind": "fused_softmax", "layer": "head"}
    assert data["tools"]["tensorflow"].startswith("2.")
    assert set(data["signatures"]) == {"serving_default", "explain"}
    assert data["signatures"]["explain"]["defaults"] == {"target_class": [-1]}
    verification = data["verification"]
    assert verification["saliency_predicted_class_max_abs_diff"] <= verification["saliency_predicted_class_tolerance"]
    assert verification["finite_differences"]["max_error_relative_to_max_gradient"] < 0.05
    assert (path / "assets.extra" / "export_report.json").is_file()
    assert np.isfinite(verification["logits_max_abs_diff"])
