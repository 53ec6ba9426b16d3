"""Guided IG against PAIR's `saliency.core.GuidedIG` on the same model and images, and its completeness.

PAIR's implementation (pip `saliency`, dev extra) is the independent reference, fed gradients
by an eager `tf.GradientTape` on the Keras model through a numpy call_model_function; the
export is run as TF Serving loads it (the TF1 session loader).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from exporter import ConfigError, ExportConfig, SaliencyExporter, Tf1SavedModel
from exporter._config import MethodsConfig, config_from_mapping
from exporter.methods import GuidedIntegratedGradientsParams
from tests.exporter.helpers import (
    assert_path_method_signature_def,
    export,
    linear_head_model,
    logits_model,
    samples,
)

saliency_core = pytest.importorskip("saliency.core")
pair_guided_ig = pytest.importorskip("saliency.core.guided_ig")


class _NumpyWithQuantileInterpolation:
    """numpy, but `quantile(..., interpolation=)` (removed in numpy 2.4) is `method=`.

    PAIR's GuidedIG 0.2.1 still passes `interpolation="lower"`; this only renames the keyword
    for its module, the quantile is numpy's own.
    """

    def __getattr__(self, name: str) -> object:
        return getattr(np, name)

    @staticmethod
    def quantile(a, q, interpolation="linear", **kwargs):
        return np.quantile(a, q, method=interpolation, **kwargs)


@pytest.fixture(autouse=True)
def _pair_on_this_numpy(monkeypatch):
    monkeypatch.setattr(pair_guided_ig, "np", _NumpyWithQuantileInterpolation())

SIGNATURE = "explain_guided_integrated_gradients"
# PAIR's fraction and max_dist, fewer steps.
PARAMS = GuidedIntegratedGradientsParams(steps=24, fraction=0.25, max_dist=0.02)


def _methods(params: GuidedIntegratedGradientsParams) -> MethodsConfig:
    return MethodsConfig(enabled=("guided_integrated_gradients",), params=[params])


def _pair_guided_ig(model: keras.Model, image: np.ndarray, target: int, params: GuidedIntegratedGradientsParams) -> np.ndarray:
    def call_model_function(batch, call_model_args=None, expected_keys=None):
        x = tf.constant(np.asarray(batch, np.float32))
        with tf.GradientTape() as tape:
            tape.watch(x)
            selected = model(x, training=False)[:, call_model_args["target"]]
        return {saliency_core.INPUT_OUTPUT_GRADIENTS: tape.gradient(selected, x).numpy()}

    return saliency_core.GuidedIG().GetMask(
        image.astype(np.float64),
        call_model_function,
        call_model_args={"target": target},
        x_baseline=np.full(image.shape, params.baseline),
        x_steps=params.steps,
        fraction=params.fraction,
        max_dist=params.max_dist,
    )


@pytest.fixture(scope="module")
def conv_guided_export(tmp_path_factory):
    model = logits_model()
    path = export(model, tmp_path_factory.mktemp("guided"), ExportConfig(methods=_methods(PARAMS)))
    with Tf1SavedModel(path) as saved:
        yield model, saved


def _agreement(served: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    return float(np.abs(served - ref).max() / np.abs(ref).max()), float(np.corrcoef(served.ravel(), ref.ravel())[0, 1])


@pytest.mark.integration
@pytest.mark.parametrize("target", [-1, 2])
def test_served_guided_ig_matches_pair(conv_guided_export, target):
    model, saved = conv_guided_export
    x = samples(3, seed=31)
    out = saved.run(SIGNATURE, {"images": x, "target_class": np.array([target], np.int32)})
    for i, t in enumerate(out["target_class"]):
        relative, correlation = _agreement(out["attributions"][i], _pair_guided_ig(model, x[i], int(t), PARAMS))
        # The same path (float64 in both); only the float32 cast of the attributions differs.
        assert relative <= 1e-5 and correlation > 0.99999


@pytest.mark.integration
@pytest.mark.parametrize(
    "params",
    [
        GuidedIntegratedGradientsParams(steps=16, fraction=0.1, max_dist=1.0, baseline=0.5),  # unbounded path
        GuidedIntegratedGradientsParams(steps=16, fraction=0.5, max_dist=0.0),  # the straight line
    ],
)
def test_guided_ig_matches_pair_for_other_parameters(params):
    model = logits_model()
    signature = SaliencyExporter(model, ExportConfig(methods=_methods(params))).signatures[SIGNATURE]
    x = samples(2, seed=6)
    out = signature(tf.constant(x), tf.constant([-1], tf.int32))
    for i, t in enumerate(out["target_class"].numpy()):
        relative, correlation = _agreement(out["attributions"].numpy()[i], _pair_guided_ig(model, x[i], int(t), params))
        assert relative <= 1e-5 and correlation > 0.99999


@pytest.mark.integration
def test_guided_ig_is_complete_on_a_linear_model(tmp_path):
    # Σ_steps Δx · w = w · (x_end − x'), and the path ends within 1e-9 (L1) of the image:
    # error ≤ max|w| · 1e-9 / |Δlogit| plus float32 rounding of the attributions (~1e-7).
    path = export(linear_head_model(), tmp_path, ExportConfig(methods=_methods(PARAMS)))
    with Tf1SavedModel(path) as saved:
        out = saved.run(SIGNATURE, {"images": samples(4, seed=8), "target_class": np.array([1], np.int32)})
    assert out["approximation_error"].max() < 1e-5


@pytest.mark.integration
def test_guided_ig_approximation_error_on_a_conv_model_is_recomputable(conv_guided_export):
    model, saved = conv_guided_export
    x = samples(3, seed=2)
    out = saved.run(SIGNATURE, {"images": x})
    rows = np.arange(len(x))
    delta = model(x).numpy()[rows, out["target_class"]] - model(np.zeros_like(x)).numpy()[rows, out["target_class"]]
    expected = np.abs(out["attributions"].sum(axis=(1, 2, 3)) - delta) / np.abs(delta)
    np.testing.assert_allclose(out["approximation_error"], expected, rtol=1e-3, atol=1e-6)


def test_guided_ig_config_table_is_parsed_and_checked():
    config = config_from_mapping(
        {"methods": {"enabled": ["guided_integrated_gradients"],
                     "guided_integrated_gradients": {"steps": 8, "fraction": 0.5, "max_dist": 1, "baseline": -1}}}
    )
    assert config.methods.params["guided_integrated_gradients"] == GuidedIntegratedGradientsParams(8, 0.5, 1.0, -1.0)
    with pytest.raises(ConfigError, match=r"methods\.guided_integrated_gradients\.fraction must be in \(0, 1\]; received 1\.5"):
        GuidedIntegratedGradientsParams(fraction=1.5)
    with pytest.raises(ConfigError, match=r"methods\.guided_integrated_gradients\.max_dist must be in \[0, 1\]; received 2\.0"):
        GuidedIntegratedGradientsParams(max_dist=2)
    with pytest.raises(ConfigError, match=r"methods\.guided_integrated_gradients\.steps must be"):
        GuidedIntegratedGradientsParams(steps=0)


@pytest.mark.integration
def test_signature_def_as_tf_serving_reads_it(conv_guided_export):
    _, saved = conv_guided_export
    assert_path_method_signature_def(saved, SIGNATURE)
