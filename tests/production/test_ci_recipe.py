"""The CI recipe end to end: configs/ci/promote.sh on real exports, as both pipelines run it.

A first promotion (export → diff, nothing served yet → publish, which verifies its copy
with the verify step's command) puts version 1
where TF Serving reads; a candidate with another class count is then stopped by the diff
step, and nothing more is published.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

from tests.exporter.helpers import INPUT_SHAPE, conv_trunk

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "configs" / "ci" / "promote.sh"


def classifier(classes: int) -> keras.Model:
    keras.utils.set_random_seed(1)
    inputs = keras.Input(INPUT_SHAPE)
    return keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(conv_trunk(inputs)))


def step(name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), name], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


def test_first_promotion_publishes_and_a_breaking_candidate_is_stopped(tmp_path):
    for classes in (4, 5):
        classifier(classes).save(tmp_path / f"k{classes}.keras")
    base = tmp_path / "models" / "tiny"
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "MODEL_BASE_PATH": str(base),
        "SALIENCY_EXPORT": str(Path(sys.executable).parent / "saliency-export"),
    }
    first = {**env, "MODEL": str(tmp_path / "k4.keras"), "CANDIDATE": str(tmp_path / "c1"), "ARTIFACTS": str(tmp_path / "ci1")}
    # The verify step is the command publish runs on its copy (verify_published.json).
    for name in ("export", "diff", "publish"):
        result = step(name, first)
        assert result.returncode == 0, f"{name}: {result.stderr[-2000:]}"
    assert (base / "1" / "saved_model.pb").is_file()
    assert not any(p.name.startswith(".publish") for p in base.iterdir())
    artifacts = tmp_path / "ci1"
    assert json.loads((artifacts / "verify_published.json").read_text())["passed"] is True
    assert "skipped" in json.loads((artifacts / "diff.json").read_text())

    second = {**env, "MODEL": str(tmp_path / "k5.keras"), "CANDIDATE": str(tmp_path / "c2"), "ARTIFACTS": str(tmp_path / "ci2")}
    exported = step("export", second)
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert (tmp_path / "ci2" / "candidate").read_text().strip() == str(tmp_path / "c2" / "2")
    diff = step("diff", second)
    assert diff.returncode == 1
    summary = json.loads((tmp_path / "ci2" / "diff.json").read_text())
    assert any(b["where"] == "serving_default/outputs/logits" for b in summary["contract"]["breaking"])
    assert sorted(p.name for p in base.iterdir()) == ["1"]
