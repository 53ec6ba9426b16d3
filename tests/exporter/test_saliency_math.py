"""Analytic ground truth: a linear model's input gradient is its weight row."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from exporter import REDUCTIONS, ExportConfig, Tf1SavedModel
from tests.exporter.helpers import export, samples

pytestmark = pytest.mark.integration

SHAPE = (4, 5, 3)


def _linear_model(activation: str | None) -> tuple[keras.Model, np.ndarray]:
    inputs = keras.Input(SHAPE)
    x = keras.layers.Flatten()(inputs)
    dense = keras.layers.Dense(3, activation=activation, name="head")
    model = keras.Model(inputs, dense(x))
    rng = np.random.default_rng(7)
    kernel = rng.normal(size=(int(np.prod(SHAPE)), 3)).astype(np.float32)
    dense.set_weights([kernel, rng.normal(size=3).astype(np.float32)])
    return model, kernel


def _analytic(kernel: np.ndarray, target: np.ndarray, reduction: str) -> np.ndarray:
    grads = kernel[:, target].T.reshape(len(target), *SHAPE).astype(np.float64)
    maps = {
        "max_abs": np.abs(grads).max(-1),
        "max": grads.max(-1),
        "sum_abs": np.abs(grads).sum(-1),
        "l2": np.sqrt((grads**2).sum(-1)),
    }[reduction]
    low = maps.min(axis=(1, 2), keepdims=True)
    high = maps.max(axis=(1, 2), keepdims=True)
    return (maps - low) / (high - low)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_linear_model_saliency_is_its_normalized_weight_row(reduction, tmp_path):
    model, kernel = _linear_model("softmax")
    path = export(model, tmp_path, ExportConfig(reduction=reduction))
    x = samples(4, SHAPE)
    target = np.array([0, 1, 2, 1], np.int32)
    with Tf1SavedModel(path) as saved:
        out = saved.run("explain", {"images": x, "target_class": target})
    np.testing.assert_allclose(out["saliency"], _analytic(kernel, target, reduction), atol=1e-5)
    assert out["saliency"].shape == (4, 4, 5)
    assert out["saliency"].min() >= 0.0 and out["saliency"].max() <= 1.0


def test_all_zero_gradient_gives_zero_map_not_nan(tmp_path):
    model, kernel = _linear_model(None)
    model.get_layer("head").set_weights([np.zeros_like(kernel), np.array([1.0, 0.0, 0.0], np.float32)])
    path = export(model, tmp_path)
    with Tf1SavedModel(path) as saved:
        out = saved.run("explain", {"images": samples(3, SHAPE)})
    assert not np.isnan(out["saliency"]).any()
    np.testing.assert_array_equal(out["saliency"], np.zeros((3, 4, 5), np.float32))
    np.testing.assert_array_equal(out["target_class"], [0, 0, 0])


def test_each_example_gets_its_own_map_in_a_batch(fused_saved):
    x = samples(6)
    batch = fused_saved.run("explain", {"images": x})
    for i in range(len(x)):
        single = fused_saved.run("explain", {"images": x[i : i + 1]})
        np.testing.assert_allclose(batch["saliency"][i], single["saliency"][0], atol=1e-5)
