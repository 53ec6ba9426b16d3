"""The runtime matrix compares a reduced-precision export with the exporter's own widened rule."""

from __future__ import annotations

import json

import pytest

from exporter._compat import MATRIX_RTOL, matrix_tolerance


def _version(tmp_path, verification):
    # The smallest report read_report accepts, with the verification section under test.
    report = {
        "export": {"reduction": "max_abs", "warmup_batch_sizes": [1]},
        "model": {"input_shape": [8, 8, 1], "num_classes": 3, "name": "m"},
        "signatures": {},
        "verification": verification,
    }
    (tmp_path / "assets.extra").mkdir()
    (tmp_path / "assets.extra" / "export_report.json").write_text(json.dumps(report))
    return tmp_path


def test_float32_exports_keep_the_matrix_tolerance(tmp_path):
    assert matrix_tolerance(_version(tmp_path, {"compute_dtype": "float32"})) == MATRIX_RTOL


def test_a_report_without_compute_dtype_is_taken_as_float32(tmp_path):
    assert matrix_tolerance(_version(tmp_path, {})) == MATRIX_RTOL


@pytest.mark.parametrize(("dtype", "eps"), [("float16", 2.0**-10), ("bfloat16", 2.0**-7)])
def test_reduced_precision_widens_to_sixteen_ulps_of_the_compute_dtype(tmp_path, dtype, eps):
    tolerance = matrix_tolerance(_version(tmp_path, {"compute_dtype": dtype}))
    assert tolerance == 16 * eps


def test_one_float16_ulp_passes_and_a_few_percent_does_not(tmp_path):
    # One float16 ulp is what TF 2.14 and 2.21 differ by on the mixed_float16 export.
    tolerance = matrix_tolerance(_version(tmp_path, {"compute_dtype": "float16"}))
    assert 2.0**-10 <= tolerance < 0.05
