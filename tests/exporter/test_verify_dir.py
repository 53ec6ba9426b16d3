"""`saliency-export verify DIR`: a good version passes; each kind of damage fails its check."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

from exporter import ExportConfig
from exporter._config import LimitsConfig, MethodsConfig
from exporter._files_hash import export_files_sha256
from exporter._verify_dir import COMPAT_CACHE, REPORT_ASSET, verify_version
from exporter._warmup import WARMUP_FILE
from exporter.methods import IntegratedGradientsParams
from tests.exporter.helpers import export, fused_softmax_model

HAS_CPP = importlib.util.find_spec("exporter._cpp_loader") is not None
BIN = Path(sys.executable).parent
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    # IG capped at 4 images: its warmup batch of 8 is written at 4, which verify must accept.
    config = ExportConfig(
        name="tiny",
        methods=MethodsConfig(enabled=("vanilla", "integrated_gradients"), params=[IntegratedGradientsParams(steps=8)]),
        limits=LimitsConfig(max_batch={"explain_integrated_gradients": 4}),
    )
    return export(fused_softmax_model(), tmp_path_factory.mktemp("verify_good"), config)


@pytest.fixture
def copy(good, tmp_path) -> Path:
    """A private copy of the good version, to damage."""
    return Path(shutil.copytree(good, tmp_path / "1"))


def statuses(result) -> dict[str, str]:
    return {check.name: check.status for check in result.checks}


def detail(result, name: str) -> str:
    return next(check.detail for check in result.checks if check.name == name)


@pytest.mark.integration
def test_a_good_version_passes_every_check(good):
    result = verify_version(good)
    assert result.passed, result.failures
    expected = {"report", "files_hash", "contract", "tf1_loader", "warmup"}
    assert {n for n, s in statuses(result).items() if s == "ok"} >= expected
    assert statuses(result)["cpp_loader"] == ("ok" if HAS_CPP else "skipped")
    tf1 = next(c for c in result.checks if c.name == "tf1_loader").figures
    # serving_default once, explain and explain_integrated_gradients with and without target_class.
    assert tf1["runs"] == 5 and tf1["samples"] == 4
    warmup = next(c for c in result.checks if c.name == "warmup").figures
    assert warmup["records"] == 3 * 2  # three signatures × batch sizes (1, 8)
    summary = result.to_dict()
    assert json.loads(json.dumps(summary)) == summary and summary["passed"] is True


@pytest.mark.integration
def test_files_hash_covers_every_file_but_the_report(good, copy):
    report = json.loads((good / REPORT_ASSET).read_text())
    assert report["export_files"]["sha256"] == export_files_sha256(good, [REPORT_ASSET])
    # Independent reading of the documented format: path NUL size NUL bytes, sorted by path.
    digest = hashlib.sha256()
    for path in sorted(p for p in good.rglob("*") if p.is_file() and p.relative_to(good) != REPORT_ASSET):
        relative = path.relative_to(good).as_posix()
        digest.update(f"{relative}\0{path.stat().st_size}\0".encode() + path.read_bytes())
    assert digest.hexdigest() == report["export_files"]["sha256"]
    (copy / REPORT_ASSET).write_text("{}")  # the report itself is not hashed
    assert export_files_sha256(copy, [REPORT_ASSET]) == report["export_files"]["sha256"]
    (copy / "assets.extra" / "extra.txt").write_text("x")  # an added file is a change
    assert export_files_sha256(copy, [REPORT_ASSET]) != report["export_files"]["sha256"]


@pytest.mark.integration
def test_a_changed_report_hash_fails_only_the_hash_check(copy):
    path = copy / REPORT_ASSET
    report = json.loads(path.read_text())
    report["export_files"]["sha256"] = "0" * 64
    path.write_text(json.dumps(report))
    result = verify_version(copy, cpp=False)
    assert not result.passed
    assert statuses(result)["files_hash"] == "failed"
    assert "0" * 64 in detail(result, "files_hash")
    assert [n for n, s in statuses(result).items() if s == "failed"] == ["files_hash"]


@pytest.mark.integration
def test_a_renamed_input_alias_in_saved_model_pb_fails_the_contract(copy):
    path = copy / "saved_model.pb"
    saved_model = saved_model_pb2.SavedModel.FromString(path.read_bytes())
    signature = saved_model.meta_graphs[0].signature_def["explain"]
    signature.inputs["pixels"].CopyFrom(signature.inputs["images"])
    del signature.inputs["images"]
    path.write_bytes(saved_model.SerializeToString())
    result = verify_version(copy, cpp=False)
    assert not result.passed
    assert statuses(result)["files_hash"] == "failed"
    assert statuses(result)["contract"] == "failed"
    assert "'explain'" in detail(result, "contract") and "pixels" in detail(result, "contract")


@pytest.mark.integration
def test_garbage_in_saved_model_pb_fails_and_skips_what_needs_it(copy):
    path = copy / "saved_model.pb"
    data = bytearray(path.read_bytes())
    data[: len(data) // 2] = b"\xff" * (len(data) // 2)
    path.write_bytes(bytes(data))
    result = verify_version(copy, cpp=False)
    assert not result.passed
    assert statuses(result)["contract"] == "failed"
    assert "does not parse" in detail(result, "contract")
    assert statuses(result)["tf1_loader"] == "skipped"


@pytest.mark.integration
def test_missing_variables_fail_the_tf1_loader(copy):
    for path in (copy / "variables").glob("variables.data-*"):
        path.unlink()
    result = verify_version(copy, cpp=False)
    assert not result.passed
    assert statuses(result)["tf1_loader"] == "failed"
    assert "refused" in detail(result, "tf1_loader")
    assert statuses(result)["warmup"] == "skipped"


@pytest.mark.integration
def test_truncated_warmup_records_fail_the_warmup_check(copy):
    path = copy / WARMUP_FILE
    path.write_bytes(path.read_bytes()[:-7])
    result = verify_version(copy, cpp=False)
    assert statuses(result)["warmup"] == "failed"
    assert "does not parse or replay" in detail(result, "warmup")
    assert statuses(result)["tf1_loader"] == "ok"


@pytest.mark.integration
def test_a_warmup_record_for_an_unknown_signature_fails(copy):
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name="tiny", signature_name="explain_v0"))
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(np.zeros((1, 6, 6, 2), np.float32)))
    log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
    with tf.io.TFRecordWriter(str(copy / WARMUP_FILE)) as writer:
        writer.write(log.SerializeToString())
    result = verify_version(copy, cpp=False)
    assert statuses(result)["warmup"] == "failed"
    assert "'explain_v0'" in detail(result, "warmup")


@pytest.mark.integration
def test_a_malformed_report_fails_closed_instead_of_crashing(copy):
    path = copy / REPORT_ASSET
    report = json.loads(path.read_text())
    report["model"]["input_shape"] = ["six", 6, 2]
    path.write_text(json.dumps(report))
    result = verify_version(copy, cpp=False)
    assert not result.passed
    # The one report reader refuses it first, naming the field and what it holds.
    assert statuses(result)["report"] == "failed"
    assert "model.input_shape[] must be an integer; got 'six'" in detail(result, "report")


def test_a_directory_without_a_report_fails_cleanly(tmp_path):
    result = verify_version(tmp_path)
    assert not result.passed
    assert statuses(result)["report"] == "failed"
    assert all(s == "skipped" for n, s in statuses(result).items() if n != "report")


@pytest.mark.integration
def test_a_requested_runtime_that_is_not_cached_fails_rather_than_passes(good):
    result = verify_version(good, cpp=False, runtimes=["1.99"])
    assert not result.passed
    assert statuses(result)["cpp_loader:1.99"] == "failed"
    assert "1.99" in detail(result, "cpp_loader:1.99")


@pytest.mark.integration
@pytest.mark.skipif(not any(COMPAT_CACHE.glob("tf-2.14.*")), reason="needs the TF 2.14 runtime of `make compat`")
def test_an_older_runtime_from_the_compat_cache_runs_every_signature(good):
    result = verify_version(good, cpp=False, runtimes=["2.14"])
    assert result.passed, result.failures
    figures = next(c for c in result.checks if c.name == "cpp_loader:2.14").figures
    assert figures["tf_version"].startswith("2.14.")
    assert set(figures["signatures"]) == {"serving_default", "explain", "explain_integrated_gradients"}


@pytest.mark.integration
def test_evaluation_needs_the_model_and_then_gives_the_gate_verdict(good, tmp_path):
    from exporter.evaluation import evaluate_export

    # Exported from a model object: the report records no model file to evaluate with.
    without = verify_version(good, cpp=False, evaluate=True)
    assert statuses(without)["evaluation"] == "failed"
    assert "records no model file" in detail(without, "evaluation")
    path = tmp_path / "model.keras"
    fused_softmax_model().save(path)
    result = verify_version(good, cpp=False, evaluate=True, model=str(path))
    figures = next(c for c in result.checks if c.name == "evaluation").figures
    reference = evaluate_export(good, np.random.default_rng(0).uniform(0, 1, (4, 6, 6, 2)).astype(np.float32), model=path)
    assert statuses(result)["evaluation"] == ("ok" if reference.passed else "failed")
    if reference.passed:
        assert set(figures) - {"seconds"} == {m.method for m in reference.methods}


@pytest.mark.integration
def test_cli_prints_json_and_exits_0_then_1_on_damage(good, copy):
    ok = subprocess.run([str(BIN / "saliency-export"), "verify", str(good), "-q"], capture_output=True, text=True, env=ENV, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["passed"] is True
    (copy / "variables" / "variables.index").unlink()
    bad = subprocess.run([str(BIN / "saliency-export"), "verify", str(copy), "-q"], capture_output=True, text=True, env=ENV, timeout=300)
    assert bad.returncode == 1
    summary = json.loads(bad.stdout)
    assert summary["passed"] is False and any(f.startswith("tf1_loader") for f in summary["failures"])
