"""Vanilla gradient, Gradient x Input, SmoothGrad, Integrated Gradients and Grad-CAM against PAIR's
`saliency.core` (for docs/methods.md).

PAIR's `GradientSaliency` is the plain input gradient; its `IntegratedGradients` weighs its
`x_steps` path points equally, while ours is the trapezoidal rule over the same m + 1 points
(ends halved). The two are tied exactly: with P = PAIR's IG over the m + 1 points α = i/m and
g(·) PAIR's gradient, our IG is ((m + 1)/m)·P − (x − b)·(g(b) + g(x)) / (2m); so ours is
checked against an expression made only of PAIR's outputs.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from exporter import ExportConfig, SaliencyExporter
from exporter._config import MethodsConfig
from exporter.methods import IntegratedGradientsParams, SmoothGradParams
from tests.exporter.helpers import logits_model, samples

saliency_core = pytest.importorskip("saliency.core")

STEPS = 16
SMOOTHGRAD = SmoothGradParams(samples=6, noise=0.2, seed=3)


@pytest.fixture(scope="module")
def model_and_signatures():
    model = logits_model()
    methods = MethodsConfig(
        enabled=("smoothgrad", "integrated_gradients", "gradient_x_input", "gradcam"), internal_batch=5, params=[IntegratedGradientsParams(steps=STEPS), SMOOTHGRAD]
    )
    return model, SaliencyExporter(model, ExportConfig(methods=methods)).signatures


def _call_model_function(model, target: int):
    def call_model_function(batch, call_model_args=None, expected_keys=None):
        x = tf.constant(np.asarray(batch, np.float32))
        with tf.GradientTape() as tape:
            tape.watch(x)
            selected = model(x, training=False)[:, target]
        return {saliency_core.INPUT_OUTPUT_GRADIENTS: tape.gradient(selected, x).numpy()}

    return call_model_function


def _normalized_max_abs(gradient: np.ndarray) -> np.ndarray:
    reduced = np.abs(gradient).max(axis=-1)
    return (reduced - reduced.min()) / (reduced.max() - reduced.min())


@pytest.mark.integration
def test_vanilla_map_equals_pairs_gradient_saliency(model_and_signatures):
    model, signatures = model_and_signatures
    x = samples(3, seed=12)
    out = signatures["explain"](tf.constant(x), tf.constant([-1], tf.int32))
    diffs = []
    for i, target in enumerate(out["target_class"].numpy()):
        gradient = saliency_core.GradientSaliency().GetMask(x[i], _call_model_function(model, int(target)))
        diffs.append(np.abs(out["saliency"].numpy()[i] - _normalized_max_abs(gradient)).max())
    print(f"vanilla map vs PAIR GradientSaliency: max abs diff {max(diffs):.1e}")
    assert max(diffs) < 1e-6


@pytest.mark.integration
def test_gradient_x_input_map_equals_the_input_times_pairs_gradient(model_and_signatures):
    # PAIR has no Gradient × Input; its GradientSaliency times the image is the definition.
    model, signatures = model_and_signatures
    x = samples(3, seed=16)
    out = signatures["explain_gradient_x_input"](tf.constant(x), tf.constant([-1], tf.int32))
    diffs = []
    for i, target in enumerate(out["target_class"].numpy()):
        gradient = saliency_core.GradientSaliency().GetMask(x[i], _call_model_function(model, int(target)))
        diffs.append(np.abs(out["saliency"].numpy()[i] - _normalized_max_abs(x[i] * gradient)).max())
    print(f"gradient x input map vs x * PAIR GradientSaliency: max abs diff {max(diffs):.1e}")
    assert max(diffs) < 1e-6


@pytest.mark.integration
def test_integrated_gradients_equal_pairs_ig_with_the_trapezoid_ends(model_and_signatures):
    model, signatures = model_and_signatures
    x = samples(3, seed=13)
    out = signatures["explain_integrated_gradients"](tf.constant(x), tf.constant([-1], tf.int32))
    baseline = np.zeros_like(x[0])
    diffs = []
    for i, target in enumerate(out["target_class"].numpy()):
        call = _call_model_function(model, int(target))
        pair_ig = saliency_core.IntegratedGradients().GetMask(
            x[i], call, x_baseline=baseline, x_steps=STEPS + 1, batch_size=STEPS + 1
        )
        ends = saliency_core.GradientSaliency().GetMask(baseline, call) + saliency_core.GradientSaliency().GetMask(x[i], call)
        reference = (STEPS + 1) / STEPS * pair_ig - (x[i] - baseline) * ends / (2 * STEPS)
        diffs.append(np.abs(out["attributions"].numpy()[i] - reference).max() / np.abs(reference).max())
    print(f"IG vs PAIR IntegratedGradients (trapezoid ends restored): max relative diff {max(diffs):.1e}")
    assert max(diffs) < 1e-5


@pytest.mark.integration
def test_gradcam_map_equals_pairs_gradcam_up_to_the_border_rule_of_the_resize(model_and_signatures):
    # PAIR's class map (should_resize=False: ReLU(Σ_k w_k A_k)) upsampled bilinearly with
    # skimage's mode="edge" (the border rule of tf.image.resize) and min-max scaled must be the
    # export's map. PAIR's own resize uses mode="reflect", which differs near the border.
    from skimage.transform import resize

    model, signatures = model_and_signatures
    layer = model.get_layer("conv")
    both = keras.Model(model.inputs, [layer.output, model.outputs[0]])
    x = samples(3, seed=14)
    out = signatures["explain_gradcam"](tf.constant(x), tf.constant([-1], tf.int32))
    diffs, border = [], []
    for i, target in enumerate(out["target_class"].numpy()):
        def call_model_function(batch, call_model_args=None, expected_keys=None, target=int(target)):
            with tf.GradientTape() as tape:
                activations, logits = both(tf.constant(np.asarray(batch, np.float32)), training=False)
                selected = logits[:, target]
            return {
                saliency_core.CONVOLUTION_LAYER_VALUES: activations.numpy(),
                saliency_core.CONVOLUTION_OUTPUT_GRADIENTS: tape.gradient(selected, activations).numpy(),
            }

        cam = saliency_core.GradCam().GetMask(x[i], call_model_function, should_resize=False, three_dims=False)
        upsampled = resize(cam, x.shape[1:3], order=1, mode="edge")
        scaled = (upsampled - upsampled.min()) / (upsampled.max() - upsampled.min())
        diffs.append(np.abs(out["saliency"].numpy()[i] - scaled).max())
        pair = saliency_core.GradCam().GetMask(x[i], call_model_function, three_dims=False)
        border.append(np.abs(out["saliency"].numpy()[i] - (pair - pair.min()) / (pair.max() - pair.min())).max())
    print(f"Grad-CAM map vs PAIR GradCam (edge-mode resize): max abs diff {max(diffs):.1e}; "
          f"with PAIR's reflect-mode resize: {max(border):.2f}")
    assert max(diffs) < 1e-5


@pytest.mark.integration
def test_smoothgrad_map_equals_pairs_smoothed_gradient_with_the_same_noise(model_and_signatures, monkeypatch):
    # PAIR draws copy i's noise from np.random.normal; fed the export's documented noise
    # (σ · stateless_normal(seed=[seed, i]), σ = noise × the input range's width), its
    # GetSmoothedMask (magnitude=False: the mean gradient) must give the export's map.
    model, signatures = model_and_signatures
    x = samples(2, seed=15)
    out = signatures["explain_smoothgrad"](tf.constant(x), tf.constant([-1], tf.int32))
    diffs = []
    for i, target in enumerate(out["target_class"].numpy()):
        draws = iter(range(SMOOTHGRAD.samples))

        def export_noise(loc, scale, size, draws=draws):
            copy = next(draws)
            noise = tf.random.stateless_normal(size, seed=[SMOOTHGRAD.seed, copy]).numpy()
            return SMOOTHGRAD.sigma * noise

        monkeypatch.setattr(np.random, "normal", export_noise)
        gradient = saliency_core.GradientSaliency().GetSmoothedMask(
            x[i], _call_model_function(model, int(target)), nsamples=SMOOTHGRAD.samples, magnitude=False
        )
        monkeypatch.undo()
        diffs.append(np.abs(out["saliency"].numpy()[i] - _normalized_max_abs(gradient)).max())
    print(f"SmoothGrad map vs PAIR GetSmoothedMask (same noise): max abs diff {max(diffs):.1e}")
    assert max(diffs) < 1e-5
