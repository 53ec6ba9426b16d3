"""read_report: the one reader of the export report, and its errors (file and field named)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from serving_client import ReportError, read_report
from serving_client.contract import REPORT_ASSET


def _minimal() -> dict[str, Any]:
    return {
        "export": {"reduction": "max_abs", "warmup_batch_sizes": [1, 8]},
        "model": {"input_shape": [8, 8, 1], "num_classes": 3, "name": "m"},
        "signatures": {
            "serving_default": {
                "method_name": "tensorflow/serving/predict",
                "inputs": {"images": {"dtype": "DT_FLOAT", "shape": [-1, 8, 8, 1]}},
                "outputs": {"logits": {"dtype": "DT_FLOAT", "shape": [-1, 3]}},
                "defaults": {},
            }
        },
        "verification": {"samples": 4},
    }


def _write(version: Path, report: Any) -> Path:
    path = version / REPORT_ASSET
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report if isinstance(report, str) else json.dumps(report))
    return path


def test_a_minimal_report_reads_with_defaults_for_older_fields(tmp_path):
    _write(tmp_path, _minimal())
    report = read_report(tmp_path)
    assert report.model.input_shape == (8, 8, 1)
    assert report.model.num_classes == 3
    assert report.export.input_format == "float32"  # reports before input formats
    assert report.export.warmup_batch_sizes == (1, 8)
    assert report.verification.compute_dtype == "float32"
    assert report.verification.samples == 4
    assert report.limits is None and report.export_files is None and report.evaluation is None
    assert report.signatures["serving_default"].inputs["images"].shape == (-1, 8, 8, 1)
    assert report.raw["model"]["name"] == "m"


def test_a_missing_report_names_the_path(tmp_path):
    with pytest.raises(ReportError, match="export_report.json is missing: .* is not a saliency-serving export"):
        read_report(tmp_path)


def test_bad_json_names_the_path(tmp_path):
    path = _write(tmp_path, "{not json")
    with pytest.raises(ReportError, match=f"{path} is not valid JSON"):
        read_report(tmp_path)


@pytest.mark.parametrize(("section", "key"), [("model", "input_shape"), ("model", "num_classes"), ("export", "reduction")])
def test_a_missing_field_names_the_path_and_field(tmp_path, section, key):
    report = _minimal()
    del report[section][key]
    path = _write(tmp_path, report)
    with pytest.raises(ReportError) as info:
        read_report(tmp_path)
    assert str(info.value) == f"{path} lacks the field {section}.{key}; expected a report written by saliency-export."


def test_a_missing_section_is_named(tmp_path):
    report = _minimal()
    del report["verification"]
    _write(tmp_path, report)
    with pytest.raises(ReportError, match="lacks the field verification;"):
        read_report(tmp_path)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r["model"].update(input_shape=["six", 8, 1]), "model.input_shape[] must be an integer; got 'six'."),
        (lambda r: r["model"].update(num_classes=True), "model.num_classes must be an integer; got True."),
        (lambda r: r.update(limits={"signatures": {"explain": {}}}), "lacks the field limits.signatures.explain.max_batch"),
        (lambda r: r.update(export=[]), "export must be a JSON object; got []."),
    ],
)
def test_a_mistyped_field_is_named_with_what_it_holds(tmp_path, mutate, message):
    report = _minimal()
    mutate(report)
    _write(tmp_path, report)
    with pytest.raises(ReportError, match="^" + str(tmp_path / REPORT_ASSET).replace(".", r"\.") + ": |lacks"):
        read_report(tmp_path)
    with pytest.raises(ReportError) as info:
        read_report(tmp_path)
    assert message in str(info.value)


def test_unknown_fields_are_kept_and_listed(tmp_path):
    report = _minimal()
    report["model"]["future_field"] = 1
    report["later_section"] = {}
    _write(tmp_path, report)
    typed = read_report(tmp_path)
    assert typed.raw["model"]["future_field"] == 1
    assert typed.unknown_fields() == ["model.future_field", "later_section"]
