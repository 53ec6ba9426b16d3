"""Peak memory of SmoothGrad and IG does not grow with the step count at a fixed internal batch.

Each configuration runs in its own process (peak RSS, `ru_maxrss`, only ever grows), and
the growth of the peak over one call at batch 8 is compared after a warm-up call at batch 1
(which pays for tracing). Measured while writing this (batch 32 variant, 2-core box): IG at
internal_batch 8 grew 137 MiB at 64 and at 512 steps; in one chunk 384 → 2992 MiB.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

_PROBE = r"""
import os, resource, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import keras, numpy as np, tensorflow as tf
from exporter import ExportConfig, SaliencyExporter
from exporter._config import MethodsConfig
method, steps, chunk = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
keras.utils.set_random_seed(0)
inputs = keras.Input((32, 32, 3))
x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
x = keras.layers.GlobalAveragePooling2D()(x)
model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
methods = MethodsConfig(enabled=(method,), internal_batch=chunk, ig_steps=steps, smoothgrad_samples=steps)
fn = SaliencyExporter(model, ExportConfig(methods=methods)).signatures["explain_" + method]
images = tf.constant(np.random.default_rng(0).random((8, 32, 32, 3), dtype=np.float32))
target = tf.constant([-1], tf.int32)
fn(images[:1], target)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
fn(images, target)["saliency"].numpy()
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""

ONE_CHUNK = 10_000


def _peak_growth_mib(runs: list[tuple[str, int, int]]) -> dict[tuple[str, int, int], float]:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "CUDA_VISIBLE_DEVICES": ""}
    procs = {
        run: subprocess.Popen(
            [sys.executable, "-c", _PROBE, run[0], str(run[1]), str(run[2])],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=root,
        )
        for run in runs
    }
    growth = {}
    for run, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
        growth[run] = float(out.split()[-1])
    return growth


def test_peak_memory_is_bounded_by_the_internal_batch_not_the_step_count():
    runs = [
        ("integrated_gradients", 64, 8),
        ("integrated_gradients", 512, 8),
        ("smoothgrad", 64, 8),
        ("smoothgrad", 512, 8),
        ("integrated_gradients", 64, ONE_CHUNK),
        ("integrated_gradients", 512, ONE_CHUNK),
    ]
    growth = _peak_growth_mib(runs)
    print({f"{m} steps={s} chunk={c}": round(g, 1) for (m, s, c), g in growth.items()})
    for method in ("integrated_gradients", "smoothgrad"):
        small, large = growth[(method, 64, 8)], growth[(method, 512, 8)]
        # 8× the steps; the slack absorbs allocator noise on a small absolute growth.
        assert large < 1.5 * small + 16, (method, small, large)
    one_small, one_large = growth[("integrated_gradients", 64, ONE_CHUNK)], growth[("integrated_gradients", 512, ONE_CHUNK)]
    assert one_large > 3 * one_small, (one_small, one_large)
    assert one_large > 3 * growth[("integrated_gradients", 512, 8)]
