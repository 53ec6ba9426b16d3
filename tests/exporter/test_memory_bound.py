"""Peak memory of SmoothGrad and IG does not grow with the step count at a fixed internal batch.

Each configuration runs in its own process and reports how far one call at batch 8 raises
the process's peak RSS (`VmHWM`) above its current RSS just before the call. That includes
tracing the signature, which costs the same whatever the step count (the loop is a
`tf.while_loop`), so differences between step counts are the computation's. (An earlier
version warmed up at batch 1 first; the warm-up's tracing peak then often hid the call
entirely and every growth read 0.) Measured here: IG at internal_batch 8 grew the same at
64 and 512 steps; in one chunk it grew by ~600 MiB more at 512 steps.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

_PROBE = r"""
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import keras, numpy as np, tensorflow as tf
from exporter import ExportConfig, SaliencyExporter
from exporter._config import MethodsConfig
from exporter.methods import IntegratedGradientsParams, SmoothGradParams
method, steps, chunk = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
keras.utils.set_random_seed(0)
inputs = keras.Input((32, 32, 3))
x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
x = keras.layers.GlobalAveragePooling2D()(x)
model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
methods = MethodsConfig(
    enabled=(method,),
    internal_batch=chunk,
    params=[IntegratedGradientsParams(steps=steps), SmoothGradParams(samples=steps)],
)
fn = SaliencyExporter(model, ExportConfig(methods=methods)).signatures["explain_" + method]
images = tf.constant(np.random.default_rng(0).random((8, 32, 32, 3), dtype=np.float32))
target = tf.constant([-1], tf.int32)
def status_kib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
# VmHWM is this process's own peak. ru_maxrss is not: Linux carries the parent's peak across
# fork+exec, so under pytest every child started at pytest's ~1 GB and all growth read equal.
before = status_kib("VmRSS")
fn(images, target)["saliency"].numpy()
print((status_kib("VmHWM") - before) / 1024)

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
        # 8x the steps at a fixed internal batch: no more than allocator noise.
        assert large - small < 48, (method, small, large)
    # The measurement can see growth: without chunking, 8x the steps costs hundreds of MiB.
    one_small = growth[("integrated_gradients", 64, ONE_CHUNK)]
    one_large = growth[("integrated_gradients", 512, ONE_CHUNK)]
    assert one_large - one_small > 200, (one_small, one_large)
    assert one_large > 2 * growth[("integrated_gradients", 512, 8)], growth
