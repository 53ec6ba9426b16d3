"""`saliency-export diff OLD NEW`: each breaking change is caught, drift is measured."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from tensorflow.core.protobuf import saved_model_pb2

from exporter import ExportConfig
from exporter._config import InputConfig, MethodsConfig, VerificationConfig
from exporter._diff import BREAKING, DriftThresholds, diff_versions
from exporter.cli import main as cli_main
from tests.exporter.helpers import INPUT_SHAPE, conv_trunk, export

BIN = Path(sys.executable).parent
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
CLASSES = ("a", "b", "c", "d")
OFF = DriftThresholds(min_agreement=0.0, max_probability_shift=1.0, max_mean_dissimilarity=2.0,
                      max_dissimilarity=2.0, min_mean_spearman=-1.0)


def classifier(shape: tuple[int, int, int] = INPUT_SHAPE, classes: int = 4, seed: int = 1) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape)
    return keras.Model(inputs, keras.layers.Dense(classes, activation="softmax", name="head")(conv_trunk(inputs)))


def config(methods=("vanilla", "gradient_x_input"), classes=CLASSES, **kwargs) -> ExportConfig:
    # Light verification and warmup: these tests are about the diff, not the export.
    return ExportConfig(
        name="tiny", class_names=classes, methods=MethodsConfig(enabled=methods),
        verification=VerificationConfig(num_samples=2, fd_positions=2), warmup_batch_sizes=(1,), **kwargs,
    )


@pytest.fixture(scope="module")
def versions(tmp_path_factory) -> dict[str, Path]:
    """One OLD version and a NEW candidate per kind of change, each a real export."""
    root = tmp_path_factory.mktemp("diff")
    base = classifier()
    out = {
        "old": export(base, root / "old", config()),
        "same": export(classifier(), root / "same", config()),  # an identical re-export
        "retrained": export(classifier(seed=7), root / "retrained", config()),
        "dropped": export(base, root / "dropped", config(methods=("vanilla",))),
        "uint8": export(base, root / "uint8", config(input=InputConfig(format="uint8"))),
        "resized": export(classifier(shape=(8, 8, 2)), root / "resized", config()),
        "five_classes": export(classifier(classes=5), root / "five", config(classes=(*CLASSES, "e"))),
    }
    renamed = root / "renamed" / "1"
    shutil.copytree(out["old"], renamed)
    path = renamed / "saved_model.pb"
    saved_model = saved_model_pb2.SavedModel.FromString(path.read_bytes())
    signature = saved_model.meta_graphs[0].signature_def["explain"]
    signature.inputs["pixels"].CopyFrom(signature.inputs["images"])
    del signature.inputs["images"]
    path.write_bytes(saved_model.SerializeToString())
    out["renamed"] = renamed
    return out


def breaking(result) -> dict[str, str]:
    return {f"{c.signature}/{c.tensor}" if c.tensor else c.signature: c.detail for c in result.breaking}


@pytest.mark.integration
def test_an_identical_re_export_is_compatible_with_no_drift(versions):
    result = diff_versions(versions["old"], versions["same"])
    assert result.passed, result.failures
    assert {c.kind for c in result.changes} == {"compatible"}
    # Every tensor is listed: serving_default 1 input + 3 outputs; each explain* 2 + 5.
    summary = result.to_dict()
    assert len(summary["contract"]["compatible"]) == (1 + 3) + 2 * (2 + 5)
    drift = result.drift
    assert drift["images"] == 16 and drift["prediction_agreement"] == 1.0
    assert drift["max_probability_shift"] == 0.0
    for figures in drift["saliency"].values():
        assert figures["max_abs_diff"] == 0.0
        assert figures["max_dissimilarity"] <= 1e-9 and figures["min_spearman"] == pytest.approx(1.0)
    assert set(drift["saliency"]) == {"explain", "explain_gradient_x_input"}


@pytest.mark.integration
def test_a_retrained_model_is_compatible_but_drifts(versions):
    loose = diff_versions(versions["old"], versions["retrained"], thresholds=OFF)
    assert loose.passed and not loose.breaking
    drift = loose.drift
    assert drift["max_probability_shift"] > 0.01
    maps = drift["saliency"]["explain"]
    assert maps["mean_dissimilarity"] > 0.05 and maps["mean_spearman"] < 0.99
    # The same pair fails as soon as a threshold is below the measured drift.
    tight = diff_versions(
        versions["old"], versions["retrained"],
        thresholds=DriftThresholds(min_agreement=0.0, max_probability_shift=1.0,
                                   max_mean_dissimilarity=maps["mean_dissimilarity"] / 2, min_mean_spearman=-1.0),
    )
    assert not tight.passed and not tight.breaking
    assert any("explain: mean 1 − SSIM" in f for f in tight.failures)


@pytest.mark.integration
def test_a_renamed_input_alias_is_breaking(versions):
    result = diff_versions(versions["old"], versions["renamed"])
    assert not result.passed
    assert "images dropped" in breaking(result)["explain/inputs/images"]
    # `pixels` has no default, so clients of OLD do not send it: breaking too.
    assert "new required input" in breaking(result)["explain/inputs/pixels"]
    assert set(breaking(result)) == {"explain/inputs/images", "explain/inputs/pixels"}


@pytest.mark.integration
def test_a_dropped_signature_is_breaking_and_the_reverse_is_added(versions):
    result = diff_versions(versions["old"], versions["dropped"])
    assert set(breaking(result)) == {"explain_gradient_x_input"}
    back = diff_versions(versions["dropped"], versions["old"])
    assert back.passed, back.failures
    assert [(c.kind, c.signature) for c in back.changes if c.kind == "added"] == [("added", "explain_gradient_x_input")]


@pytest.mark.integration
def test_a_changed_dtype_is_breaking_and_skips_drift(versions):
    result = diff_versions(versions["old"], versions["uint8"])
    wanted = {f"{s}/inputs/images" for s in ("serving_default", "explain", "explain_gradient_x_input")}
    assert set(breaking(result)) == wanted
    assert "DT_FLOAT → DT_UINT8" in breaking(result)["explain/inputs/images"]
    assert "skipped" in result.drift


@pytest.mark.integration
def test_a_changed_image_size_is_breaking(versions):
    result = diff_versions(versions["old"], versions["resized"])
    found = breaking(result)
    assert "dimension 1: 6 → 8" in found["serving_default/inputs/images"]
    # Every signature's images input says it; the maps' shapes are dynamic since target_class
    # may be [batch, K] (the class axis), so the outputs carry no static H, W to compare.
    assert "dimension 1: 6 → 8" in found["explain/inputs/images"]
    assert "dimension 1: 6 → 8" in found["explain_gradient_x_input/inputs/images"]
    assert "skipped" in result.drift


@pytest.mark.integration
def test_a_changed_class_count_is_breaking_unless_documented(versions):
    result = diff_versions(versions["old"], versions["five_classes"])
    found = breaking(result)
    assert "dimension 1: 4 → 5" in found["serving_default/outputs/logits"]
    assert "*/class_names" in found
    allowed = diff_versions(versions["old"], versions["five_classes"], allow_class_change=True, thresholds=OFF)
    assert allowed.passed, allowed.failures
    assert "predictions" in allowed.drift  # K changed: predictions not compared


def test_thresholds_are_validated():
    with pytest.raises(Exception, match="min_agreement must be in"):
        DriftThresholds(min_agreement=1.5)


@pytest.mark.integration
def test_cli_diff_exit_codes_and_json(versions, capsys):
    assert cli_main(["diff", str(versions["old"]), str(versions["same"]), "-q"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["passed"] is True and summary["contract"][BREAKING] == []
    run = subprocess.run(
        [str(BIN / "saliency-export"), "diff", str(versions["old"]), str(versions["dropped"]), "-q"],
        capture_output=True, text=True, env=ENV, timeout=300,
    )
    assert run.returncode == 1, run.stderr
    summary = json.loads(run.stdout)
    assert summary["contract"][BREAKING][0]["where"] == "explain_gradient_x_input"


@pytest.mark.integration
def test_image_files_are_reference_images(versions, tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    # Two channels: no image file format has those, so the export's shape is refused clearly.
    Image.fromarray(rng.integers(0, 256, (6, 6), dtype=np.uint8)).save(tmp_path / "x.png")
    with pytest.raises(Exception, match="1, 3 or 4 channels"):
        diff_versions(versions["old"], versions["same"], images=str(tmp_path / "x.png"))
    np.save(tmp_path / "ref.npy", rng.random((3, *INPUT_SHAPE), dtype=np.float32))
    result = diff_versions(versions["old"], versions["same"], images=str(tmp_path / "ref.npy"))
    assert result.drift["images"] == 3 and result.passed
    # No data set is built in: a bare name is looked up as a file.
    with pytest.raises(Exception, match="--images: mnist is not a file or directory"):
        diff_versions(versions["old"], versions["same"], images="mnist")


def test_cli_diff_of_a_non_export_fails_with_a_json_summary(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    assert cli_main(["diff", str(tmp_path / "a"), str(tmp_path / "a"), "-q", "--output", str(tmp_path / "d.json")]) == 1
    out = capsys.readouterr()
    summary = json.loads(out.out)
    assert summary["passed"] is False and "export_report.json" in summary["failures"][0]
    assert json.loads((tmp_path / "d.json").read_text()) == summary
    assert "saliency-export diff: error:" in out.err
