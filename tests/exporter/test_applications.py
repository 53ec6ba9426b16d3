"""Every keras.applications family exports with default settings and passes verification.

Each family's smallest member at the smallest input it accepts, random weights, 10 classes
(`tests/benchmarks/bench_export_real.FAMILIES`). Verification is the export's own: the TF1
and C++ loaders against the eager reference, and the eager gradient against float64 finite
differences of a float64 copy of the model. One verification sample per family instead of
the default four, to keep the sweep within `make test`'s budget; `make bench` runs it with
the default.
"""

from __future__ import annotations

import pytest

from tests.benchmarks.bench_export_real import FAMILIES, export_family

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_exports_and_verifies(family, tmp_path):
    figures = export_family(family, tmp_path, num_samples=1)
    # The export verified (write() raises otherwise); the figures must be the honest ones.
    assert figures["fd_differentiated"] == "float64_copy"
    assert figures["fd_error"] <= 0.05
    assert figures["saliency_max_abs_diff"] <= 1e-3
    assert (tmp_path / family / "1" / "saved_model.pb").is_file()
