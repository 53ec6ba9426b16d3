"""Blur IG against PAIR's `saliency.core.BlurIG` on the same model and images, and its completeness.

PAIR's implementation (pip `saliency`, dev extra) is the independent reference: it blurs with
SciPy and gets its gradients from an eager `tf.GradientTape` on the Keras model through a
numpy call_model_function; the export is run as TF Serving loads it (the TF1 session loader).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from exporter import ConfigError, ExportConfig, SaliencyExporter, Tf1SavedModel
from exporter._config import MethodsConfig, config_from_mapping
from exporter.methods import BlurIntegratedGradientsParams
from tests.exporter.helpers import (
    assert_path_method_signature_def,
    export,
    linear_head_model,
    logits_model,
    samples,
)

saliency_core = pytest.importorskip("saliency.core")

SIGNATURE = "explain_blur_integrated_gradients"
# The chord (grad_step 0) equals PAIR's finite difference with grad_step = max_sigma / steps.
CHORD = BlurIntegratedGradientsParams(steps=20, max_sigma=4.0)
# PAIR's own finite-difference step and square-root spacing.
PAIR_STYLE = BlurIntegratedGradientsParams(steps=24, max_sigma=6.0, grad_step=0.01, sqrt=True)


def _methods(params: BlurIntegratedGradientsParams, internal_batch: int = 7) -> MethodsConfig:
    # 7 does not divide the step counts: the last chunk is padded.
    return MethodsConfig(enabled=("blur_integrated_gradients",), internal_batch=internal_batch, params=[params])


def _pair_blur_ig(model: keras.Model, image: np.ndarray, target: int, params: BlurIntegratedGradientsParams, grad_step: float) -> np.ndarray:
    def call_model_function(batch, call_model_args=None, expected_keys=None):
        x = tf.constant(np.asarray(batch, np.float32))
        with tf.GradientTape() as tape:
            tape.watch(x)
            selected = model(x, training=False)[:, call_model_args["target"]]
        return {saliency_core.INPUT_OUTPUT_GRADIENTS: tape.gradient(selected, x).numpy()}

    return saliency_core.BlurIG().GetMask(
        image.astype(np.float64),
        call_model_function,
        call_model_args={"target": target},
        max_sigma=params.max_sigma,
        steps=params.steps,
        grad_step=grad_step,
        sqrt=params.sqrt,
        # batch_size 1 (PAIR's default): with more, PAIR 0.2.1 weights every point of a batch by
        # the last one's Δσ, which is wrong for the unevenly spaced sqrt levels.
        batch_size=1,
    )


@pytest.fixture(scope="module")
def conv_blur_export(tmp_path_factory):
    model = logits_model()
    path = export(model, tmp_path_factory.mktemp("blur"), ExportConfig(methods=_methods(CHORD)))
    with Tf1SavedModel(path) as saved:
        yield model, saved


@pytest.mark.integration
@pytest.mark.parametrize("target", [0, 3])
def test_served_blur_ig_matches_pair_on_the_chord_path(conv_blur_export, target):
    model, saved = conv_blur_export
    x = samples(3, seed=21)
    out = saved.run(SIGNATURE, {"images": x, "target_class": np.array([target], np.int32)})
    np.testing.assert_array_equal(out["target_class"], [target] * 3)
    for i in range(3):
        ref = _pair_blur_ig(model, x[i], target, CHORD, grad_step=CHORD.max_sigma / CHORD.steps)
        scale = np.abs(ref).max()
        assert np.abs(out["attributions"][i] - ref).max() <= 1e-5 * scale
        np.testing.assert_allclose(out["attributions"][i], ref, atol=1e-6, rtol=1e-4)


@pytest.mark.integration
def test_blur_ig_with_pairs_grad_step_and_sqrt_spacing_matches_pair():
    model = logits_model()
    signature = SaliencyExporter(model, ExportConfig(methods=_methods(PAIR_STYLE))).signatures[SIGNATURE]
    x = samples(2, seed=5)
    out = signature(tf.constant(x), tf.constant([-1], tf.int32))
    attributions = out["attributions"].numpy()
    for i, target in enumerate(out["target_class"].numpy()):
        ref = _pair_blur_ig(model, x[i], int(target), PAIR_STYLE, grad_step=PAIR_STYLE.grad_step)
        # A finite difference over 0.01 of a float32 blur carries ~1e-7 / 0.01 of rounding.
        assert np.abs(attributions[i] - ref).max() <= 1e-4 * np.abs(ref).max()
        assert np.corrcoef(attributions[i].ravel(), ref.ravel())[0, 1] > 0.9999


@pytest.mark.integration
def test_approximation_error_is_completeness_against_the_blurred_baseline(conv_blur_export):
    # Recomputed from outside: F(x) − F(SciPy-blurred x) with σ = max_sigma, the path's start.
    model, saved = conv_blur_export
    x = samples(4, seed=3)
    out = saved.run(SIGNATURE, {"images": x})
    target = out["target_class"]
    baseline = np.stack([ndimage.gaussian_filter(im, sigma=[CHORD.max_sigma, CHORD.max_sigma, 0], mode="constant") for im in x])
    rows = np.arange(len(x))
    delta = model(x).numpy()[rows, target] - model(baseline).numpy()[rows, target]
    expected = np.abs(out["attributions"].sum(axis=(1, 2, 3)) - delta) / np.abs(delta)
    np.testing.assert_allclose(out["approximation_error"], expected, rtol=1e-3, atol=1e-6)
    assert out["saliency"].min() >= 0 and out["saliency"].max() <= 1


@pytest.mark.integration
def test_blur_ig_is_complete_on_a_linear_model(tmp_path):
    # Σ_i (γ_i − γ_{i+1}) · w telescopes to w · (x − γ_m) = F(x) − F(baseline) whatever the
    # steps: exact but for float32 rounding (~1e-7 relative per term, 25 levels × 72 features).
    params = BlurIntegratedGradientsParams(steps=25, max_sigma=50.0)
    path = export(linear_head_model(), tmp_path, ExportConfig(methods=_methods(params, 32)))
    with Tf1SavedModel(path) as saved:
        out = saved.run(SIGNATURE, {"images": samples(4, seed=8), "target_class": np.array([1], np.int32)})
    assert out["approximation_error"].max() < 1e-5


@pytest.mark.integration
def test_blur_ig_does_not_depend_on_the_internal_batch():
    model, x, target = logits_model(), tf.constant(samples(3)), tf.constant([-1], tf.int32)

    def run(internal_batch: int) -> np.ndarray:
        sigs = SaliencyExporter(model, ExportConfig(methods=_methods(CHORD, internal_batch))).signatures
        return sigs[SIGNATURE](x, target)["attributions"].numpy()

    np.testing.assert_allclose(run(3), run(1000), atol=1e-6)


def test_blur_ig_config_table_is_parsed_and_checked():
    config = config_from_mapping(
        {"methods": {"enabled": ["blur_integrated_gradients"],
                     "blur_integrated_gradients": {"steps": 8, "max_sigma": 10, "grad_step": 0.01, "sqrt": True}}}
    )
    assert config.methods.params["blur_integrated_gradients"] == BlurIntegratedGradientsParams(8, 10.0, 0.01, True)
    with pytest.raises(ConfigError, match=r"methods\.blur_integrated_gradients\.max_sigma must be a finite number > 0; received 0\.0"):
        BlurIntegratedGradientsParams(max_sigma=0)
    with pytest.raises(ConfigError, match=r"methods\.blur_integrated_gradients\.grad_step must be >= 0; received -0\.1"):
        BlurIntegratedGradientsParams(grad_step=-0.1)
    with pytest.raises(ConfigError, match=r"methods\.blur_integrated_gradients\.sqrt must be true or false; received 1"):
        BlurIntegratedGradientsParams(sqrt=1)  # type: ignore[arg-type]


@pytest.mark.integration
def test_signature_def_as_tf_serving_reads_it(conv_blur_export):
    _, saved = conv_blur_export
    assert_path_method_signature_def(saved, SIGNATURE)
