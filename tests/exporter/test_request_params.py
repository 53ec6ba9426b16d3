"""Per-request parameters (`steps`, `samples`, `noise`, `baseline`) of the IG family and SmoothGrad.

Every served answer is compared with a reference written here (eager GradientTape on the
model, which returns logits), with PAIR's `saliency` package, or with the analytic IG of a
linear model; and each image of a mixed batch with its own answer computed alone.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from exporter import ExportConfig, Tf1SavedModel
from exporter._config import MethodsConfig
from exporter.methods import (
    BlurIntegratedGradientsParams,
    GuidedIntegratedGradientsParams,
    IntegratedGradientsParams,
    SmoothGradParams,
)
from tests.exporter.helpers import INPUT_SHAPE, export, linear_head_model, logits_model, samples

IG, SG = "explain_integrated_gradients", "explain_smoothgrad"
BLUR, GUIDED = "explain_blur_integrated_gradients", "explain_guided_integrated_gradients"
IG_PARAMS = IntegratedGradientsParams(steps=8, baseline=0.25, max_steps=40, max_samples=6, max_baselines=3)
SG_PARAMS = SmoothGradParams(samples=3, noise=0.2, max_samples=8, seed=5)
BLUR_PARAMS = BlurIntegratedGradientsParams(steps=6, max_sigma=3.0, max_steps=20)
GUIDED_PARAMS = GuidedIntegratedGradientsParams(steps=6, fraction=0.25, max_dist=0.1, max_steps=20)


@pytest.fixture(scope="module")
def conv(tmp_path_factory):
    model = logits_model()
    methods = MethodsConfig(
        enabled=("smoothgrad", "integrated_gradients", "blur_integrated_gradients", "guided_integrated_gradients"),
        internal_batch=4,
        params=[IG_PARAMS, SG_PARAMS, BLUR_PARAMS, GUIDED_PARAMS],
    )
    path = export(model, tmp_path_factory.mktemp("request_params"), ExportConfig(name="rp", methods=methods))
    with Tf1SavedModel(path) as saved:
        yield model, saved


@pytest.fixture(scope="module")
def linear(tmp_path_factory):
    model = linear_head_model()
    methods = MethodsConfig(enabled=("integrated_gradients",), params=[IntegratedGradientsParams(steps=4)])
    path = export(model, tmp_path_factory.mktemp("request_params_linear"), ExportConfig(methods=methods))
    with Tf1SavedModel(path) as saved:
        yield model, saved


def _gradient(model, x: np.ndarray, target: int) -> np.ndarray:
    x = tf.constant(x[None].astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        selected = model(x, training=False)[0, target]
    return tape.gradient(selected, x).numpy()[0].astype(np.float64)


def _noise(seed: int, j: int) -> np.ndarray:
    # The documented noise of copy j: stateless_normal([H, W, C], seed=[seed, j]).
    return tf.random.stateless_normal(INPUT_SHAPE, seed=[seed, j]).numpy()


def _ig(model, x, target, steps, baselines, samples_=1, sigma=0.0, seed=0) -> np.ndarray:
    """Eager IG of one image: trapezoid over steps + 1 points, mean over noisy copies and baselines."""
    total = np.zeros(x.shape, np.float64)
    for base in baselines:
        for j in range(samples_):
            noisy = x + np.float32(sigma) * _noise(seed, j)
            path = np.zeros(x.shape, np.float64)
            for i in range(steps + 1):
                weight = (0.5 if i in (0, steps) else 1.0) / steps
                path += weight * _gradient(model, base + (i / steps) * (noisy - base), target)
            total += (noisy - base) * path
    return total / (samples_ * len(baselines))


def _maps_close(a: np.ndarray, b: np.ndarray) -> None:
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


@pytest.mark.integration
def test_signatures_declare_the_inputs_with_the_export_values_as_defaults(conv):
    _, saved = conv
    sigs = saved.signature_defs
    i, f = tf.int32.as_datatype_enum, tf.float32.as_datatype_enum

    def inputs(name):
        return {  # None: unknown rank (target_class is [batch] or [batch, K])
            a: (x.dtype, None if x.tensor_shape.unknown_rank else [d.size for d in x.tensor_shape.dim])
            for a, x in sigs[name].inputs.items()
        }

    def defaults(name):
        return {a: tf.make_ndarray(v) for a, v in sigs[name].defaults.items()}

    base = {"images": (f, [-1, *INPUT_SHAPE]), "target_class": (i, None)}
    assert inputs(IG) == {
        **base, "steps": (i, [-1]), "samples": (i, [-1]), "noise": (f, [-1]), "baseline": (f, [-1, -1, *INPUT_SHAPE])
    }
    assert inputs(SG) == {**base, "samples": (i, [-1]), "noise": (f, [-1])}
    assert inputs(BLUR) == inputs(GUIDED) == {**base, "steps": (i, [-1])}
    assert inputs("explain") == base  # methods without per-request parameters are unchanged
    ig = defaults(IG)
    assert ig["steps"].tolist() == [8] and ig["samples"].tolist() == [1] and ig["noise"].tolist() == [0.0]
    assert ig["baseline"].shape == (1, 0, *INPUT_SHAPE) and ig["target_class"].tolist() == [-1]
    assert defaults(SG)["samples"].tolist() == [3] and defaults(SG)["noise"].tolist() == pytest.approx([0.2])
    assert defaults(BLUR)["steps"].tolist() == [6] and defaults(GUIDED)["steps"].tolist() == [6]


@pytest.mark.integration
def test_ig_mixed_per_image_values_match_the_eager_reference_and_each_image_alone(conv):
    model, saved = conv
    x = samples(3, seed=41)
    rng = np.random.default_rng(3)
    baselines = rng.random((3, 2, *INPUT_SHAPE), dtype=np.float32)
    request = {
        "steps": np.array([3, 8, 11], np.int32),
        "samples": np.array([1, 3, 2], np.int32),
        "noise": np.array([0.0, 0.1, 0.3], np.float32),
        "baseline": baselines,
    }
    out = saved.run(IG, {"images": x, "target_class": np.array([1, 2, 0], np.int32), **request})
    for b in range(3):
        want = _ig(model, x[b], out["target_class"][b], int(request["steps"][b]), list(baselines[b]),
                   int(request["samples"][b]), float(request["noise"][b]), IG_PARAMS.seed)  # fmt: skip
        np.testing.assert_allclose(out["attributions"][b], want, rtol=1e-4, atol=1e-5 * np.abs(want).max())
        alone = saved.run(IG, {"images": x[b : b + 1], "target_class": out["target_class"][b : b + 1],
                               **{k: v[b : b + 1] for k, v in request.items()}})  # fmt: skip
        _maps_close(out["saliency"][b], alone["saliency"][0])
        np.testing.assert_allclose(out["attributions"][b], alone["attributions"][0], rtol=1e-5, atol=1e-7)
        # Vertex's error for several baselines: against F(x) − mean_k F(x'_k).
        logits = model(np.concatenate([x[b : b + 1], baselines[b]]), training=False).numpy()[:, out["target_class"][b]]
        delta = float(logits[0]) - float(logits[1:].mean())
        want_error = abs(float(out["attributions"][b].astype(np.float64).sum()) - delta) / abs(delta)
        assert out["approximation_error"][b] == pytest.approx(want_error, rel=1e-3, abs=1e-5)


@pytest.mark.integration
def test_ig_without_the_inputs_uses_the_export_defaults(conv):
    model, saved = conv
    x = samples(2, seed=42)
    omitted = saved.run(IG, {"images": x})
    for b in range(2):
        want = _ig(model, x[b], omitted["target_class"][b], 8, [np.full(INPUT_SHAPE, 0.25, np.float32)])
        np.testing.assert_allclose(omitted["attributions"][b], want, rtol=1e-4, atol=1e-5 * np.abs(want).max())
    explicit = saved.run(IG, {"images": x, "steps": np.array([8, 8], np.int32), "samples": np.array([1, 1], np.int32),
                              "noise": np.zeros(2, np.float32), "baseline": np.zeros((2, 0, *INPUT_SHAPE), np.float32)})  # fmt: skip
    np.testing.assert_array_equal(omitted["saliency"], explicit["saliency"])


@pytest.mark.integration
def test_smoothgrad_mixed_samples_and_noise_match_the_eager_reference_and_each_image_alone(conv):
    model, saved = conv
    x = samples(3, seed=43)
    request = {"samples": np.array([1, 5, 3], np.int32), "noise": np.array([0.0, 0.3, 0.1], np.float32)}
    out = saved.run(SG, {"images": x, **request})
    for b in range(3):
        n, sigma = int(request["samples"][b]), float(request["noise"][b])  # input_range (0, 1)
        grads = [_gradient(model, x[b] + np.float32(sigma) * _noise(SG_PARAMS.seed, j), out["target_class"][b]) for j in range(n)]
        want = np.max(np.abs(np.mean(grads, axis=0)), axis=-1)  # the max_abs reduction
        want = (want - want.min()) / (want.max() - want.min())
        np.testing.assert_allclose(out["saliency"][b], want, atol=1e-5)
        alone = saved.run(SG, {"images": x[b : b + 1], **{k: v[b : b + 1] for k, v in request.items()}})
        _maps_close(out["saliency"][b], alone["saliency"][0])


@pytest.mark.integration
def test_blur_and_guided_ig_per_image_steps_match_pair_and_each_image_alone(conv, monkeypatch):
    from tests.exporter.test_blur_ig import _pair_blur_ig
    from tests.exporter.test_guided_ig import (
        _NumpyWithQuantileInterpolation,
        _pair_guided_ig,
        pair_guided_ig,
    )

    monkeypatch.setattr(pair_guided_ig, "np", _NumpyWithQuantileInterpolation())  # PAIR 0.2.1 on numpy 2.4

    model, saved = conv
    x = samples(2, seed=44)
    steps = np.array([3, 9], np.int32)
    for name, pair in ((BLUR, lambda b, t, m: _pair_blur_ig(model, x[b], t, dataclasses.replace(BLUR_PARAMS, steps=m),
                                                             BLUR_PARAMS.max_sigma / m)),  # the chord: PAIR's step Δσ
                       (GUIDED, lambda b, t, m: _pair_guided_ig(model, x[b], t, dataclasses.replace(GUIDED_PARAMS, steps=m)))):  # fmt: skip
        out = saved.run(name, {"images": x, "steps": steps})
        for b in range(2):
            want = pair(b, int(out["target_class"][b]), int(steps[b]))
            scale = np.abs(want).max()
            assert np.abs(out["attributions"][b] - want).max() <= 1e-4 * scale, name
            alone = saved.run(name, {"images": x[b : b + 1], "steps": steps[b : b + 1]})
            _maps_close(out["saliency"][b], alone["saliency"][0])
        # Different steps give different answers: the input is not ignored.
        assert np.abs(out["attributions"][0] - saved.run(name, {"images": x[:1]})["attributions"][0]).max() > 0


@pytest.mark.integration
def test_ig_is_complete_on_a_linear_model_with_per_request_steps_and_several_baselines(linear):
    model, saved = linear
    x = samples(3, seed=45)
    baselines = np.random.default_rng(4).random((3, 3, *INPUT_SHAPE), dtype=np.float32)
    out = saved.run(IG, {"images": x, "steps": np.array([1, 2, 7], np.int32), "baseline": baselines})
    assert out["approximation_error"].max() < 1e-5
    kernel, _ = model.get_layer("head").get_weights()
    for b, t in enumerate(out["target_class"]):
        # Analytic: IG of w·x is (x − x') ⊙ w; averaged over baselines, (x − mean x') ⊙ w.
        want = (x[b].astype(np.float64) - baselines[b].mean(axis=0)) * kernel[:, t].reshape(INPUT_SHAPE)
        np.testing.assert_allclose(out["attributions"][b], want, rtol=1e-4, atol=1e-6)
    steps_only = saved.run(IG, {"images": x, "steps": np.array([1, 5, 9], np.int32)})
    assert steps_only["approximation_error"].max() < 1e-5


@pytest.mark.integration
@pytest.mark.parametrize(
    "name, feed, message",
    [
        (IG, {"steps": np.array([0, 8], np.int32)}, r"steps out of range: expected 1 <= steps <= 40 \(config \[methods.integrated_gradients\] max_steps\); received\] \[0 8\]"),
        (IG, {"steps": np.array([41], np.int32)}, r"steps out of range: expected 1 <= steps <= 40.*\[41\]"),
        (IG, {"samples": np.array([7, 1], np.int32)}, r"samples out of range: expected 1 <= samples <= 6.*\[7 1\]"),
        (IG, {"noise": np.array([-0.5], np.float32)}, r"noise out of range: expected 0 <= noise \(finite\); received\] \[-0.5\]"),
        (SG, {"noise": np.array([np.nan], np.float32)}, r"noise out of range.*\[nan\]"),
        (SG, {"samples": np.array([9, 1], np.int32)}, r"samples out of range: expected 1 <= samples <= 8 \(config \[methods.smoothgrad\] max_samples\)"),
        (GUIDED, {"steps": np.array([21], np.int32)}, r"steps out of range: expected 1 <= steps <= 20 \(config \[methods.guided_integrated_gradients\] max_steps\)"),
        (BLUR, {"steps": np.array([1, 2, 3], np.int32)}, r"steps must have length 1 or the batch size; received length\] \[3\] \[for batch size\] \[2\]"),
        (IG, {"baseline": np.zeros((2, 4, *INPUT_SHAPE), np.float32)}, r"baseline: at most 3 baselines per image.*received\] \[4\]"),
        (IG, {"baseline": np.full((2, 1, *INPUT_SHAPE), np.inf, np.float32)}, r"baseline must be finite"),
    ],
)
def test_out_of_bounds_values_are_refused_in_the_graph(conv, name, feed, message):
    _, saved = conv
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        saved.run(name, {"images": samples(2, seed=46), **feed})
    assert np.isfinite(saved.run(name, {"images": samples(2, seed=46)})["saliency"]).all()


def test_max_parameters_are_validated_and_default_to_a_multiple():
    from exporter import ConfigError

    assert IntegratedGradientsParams().max_steps == 256 and IntegratedGradientsParams(steps=100).max_steps == 400
    assert SmoothGradParams(samples=32).max_samples == 128 and IntegratedGradientsParams().max_samples == 64
    with pytest.raises(ConfigError, match=r"methods.integrated_gradients.max_steps must be at least steps \(64\); received 10"):
        IntegratedGradientsParams(max_steps=10)
    with pytest.raises(ConfigError, match="methods.smoothgrad.max_samples"):
        SmoothGradParams(samples=4, max_samples=2)


def test_request_inputs_off_exports_the_signatures_as_before():
    from exporter import SaliencyExporter
    from exporter._config import methods_from_record
    from exporter._config_loader import to_mapping

    methods = MethodsConfig(enabled=("integrated_gradients", "smoothgrad"), request_inputs=False)
    signatures = SaliencyExporter(linear_head_model(), ExportConfig(methods=methods)).signatures
    for name in (IG, SG, "explain"):
        assert [spec.name for spec in signatures[name].input_signature] == ["images", "target_class"]
    on = MethodsConfig(enabled=("integrated_gradients",))
    assert methods_from_record(to_mapping(on)).request_inputs is True
    # A report written before the per-request parameters existed: its signatures have none.
    assert methods_from_record({"enabled": ["integrated_gradients"]}).request_inputs is False
