"""Every keras.applications family exports with default settings and passes verification.

Each family's smallest member at the smallest input it accepts, random weights, 10 classes
(`tests/benchmarks/bench_export_real.FAMILIES`). Verification is the export's own: the TF1
and C++ loaders against the eager reference, and the eager gradient against float64 finite
differences of a float64 copy of the model. One verification sample per family instead of
the default four.

Each family costs about a minute on 2 cores (TF1 and C++ loaders included), so all 14 would
double `make test`. By default the sweep runs the two families the issue found refused
(ConvNeXt: the finite-difference check; MobileNetV3: the softmax Activation after a Flatten);
`SALIENCY_SWEEP=all` runs every family, `SALIENCY_SWEEP=others` every family but those two
(what `.ci/run` adds after `make test`), and `make bench` (section export_real) exports every
family and records the figures.
"""

from __future__ import annotations

import os

import pytest

from tests.benchmarks.bench_export_real import FAMILIES, export_family

pytestmark = pytest.mark.integration

DEFAULT_SWEEP = ("ConvNeXt", "MobileNetV3")


def _sweep(setting: str | None) -> list[str]:
    if setting == "all":
        return sorted(FAMILIES)
    if setting == "others":
        return sorted(set(FAMILIES) - set(DEFAULT_SWEEP))
    if setting in (None, "", "default"):
        return list(DEFAULT_SWEEP)
    raise ValueError(f"SALIENCY_SWEEP must be 'all', 'others', 'default' or unset, got {setting!r}")


SWEEP = _sweep(os.environ.get("SALIENCY_SWEEP"))


@pytest.mark.parametrize("family", SWEEP)
def test_family_exports_and_verifies(family, tmp_path):
    figures = export_family(family, tmp_path, num_samples=1)
    # The export verified (write() raises otherwise); the figures must be the honest ones.
    assert figures["fd_differentiated"] == "float64_copy"
    assert figures["fd_error"] <= 0.05
    assert figures["saliency_max_abs_diff"] <= 1e-3
    assert (tmp_path / family / "1" / "saved_model.pb").is_file()
