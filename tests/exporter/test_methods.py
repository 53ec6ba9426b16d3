"""The extra explanation signatures: SmoothGrad, Integrated Gradients, Gradient×Input.

Ground truth where it exists analytically (a linear model), the eager reference
otherwise, and the SignatureDefs exactly as TF Serving reads them.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from exporter import ConfigError, ExportConfig, SaliencyExporter, Tf1SavedModel, methods
from exporter._config import MethodsConfig, config_from_mapping
from exporter._reference import LogitsCopy, numpy_saliency, reference_explain
from exporter.methods import IntegratedGradientsParams, SmoothGradParams
from tests.exporter.helpers import INPUT_SHAPE, export, logits_model, samples, sequential_bn_model

NEW = ("explain_smoothgrad", "explain_integrated_gradients", "explain_gradient_x_input")
# Small counts and an internal batch that does not divide them: a partial last chunk.
# Grad-CAM has its own tests (test_gradcam.py): it needs a spatial layer, which linear_model lacks.
# Blur IG and Guided IG are checked against PAIR's implementation in their own tests
# (test_blur_ig.py, test_guided_ig.py), and XRAI's IG in test_xrai.py.
OWN_TESTS = ("gradcam", "blur_integrated_gradients", "guided_integrated_gradients", "xrai")
ALL = MethodsConfig(
    enabled=tuple(m for m in methods.names() if m not in OWN_TESTS),
    internal_batch=5,
    params=[SmoothGradParams(samples=8), IntegratedGradientsParams(steps=32)],
)


def linear_model() -> keras.Model:
    """Logits linear in the input: logit_k = Σ w[:,k] x + b_k."""
    keras.utils.set_random_seed(7)
    inputs = keras.Input(INPUT_SHAPE)
    x = keras.layers.Flatten()(inputs)
    return keras.Model(inputs, keras.layers.Dense(4, activation="softmax", name="head")(x))


def _signature_defs(path) -> dict:
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((path / "saved_model.pb").read_bytes())
    (meta_graph,) = saved_model.meta_graphs
    return dict(meta_graph.signature_def)


@pytest.fixture(scope="module")
def conv_export(tmp_path_factory):
    model = logits_model()
    return model, export(model, tmp_path_factory.mktemp("methods"), ExportConfig(methods=ALL))


@pytest.fixture(scope="module")
def conv_saved(conv_export):
    with Tf1SavedModel(conv_export[1]) as saved:
        yield saved


@pytest.fixture(scope="module")
def linear_saved(tmp_path_factory):
    model = linear_model()
    path = export(model, tmp_path_factory.mktemp("linear"), ExportConfig(methods=ALL))
    with Tf1SavedModel(path) as saved:
        yield model, saved


@pytest.mark.integration
def test_default_export_has_only_the_original_signatures(fused_export):
    assert set(_signature_defs(fused_export[1])) - {"__saved_model_init_op"} == {"serving_default", "explain"}


@pytest.mark.integration
def test_new_signatures_names_dtypes_shapes_and_defaults(conv_export):
    sigs = _signature_defs(conv_export[1])
    h, w, ch = INPUT_SHAPE
    f, i = tf.float32.as_datatype_enum, tf.int32.as_datatype_enum
    explain_outputs = {
        "logits": (f, [-1, 4]),
        "probabilities": (f, [-1, 4]),
        "predicted_class": (i, [-1]),
        "target_class": (i, None),  # unknown rank: [batch] or [batch, K], and what follows it
        "saliency": (f, None),
    }
    for name in NEW:
        sig = sigs[name]
        spec = lambda infos: {  # noqa: E731
            a: (x.dtype, None if x.tensor_shape.unknown_rank else [d.size for d in x.tensor_shape.dim])
            for a, x in infos.items()
        }
        # The per-request parameters: optional inputs whose defaults are the export's values.
        request = {
            "explain_smoothgrad": {"samples": (i, [-1]), "noise": (f, [-1])},
            "explain_integrated_gradients": {
                "steps": (i, [-1]), "samples": (i, [-1]), "noise": (f, [-1]), "baseline": (f, [-1, -1, h, w, ch])
            },
        }.get(name, {})
        assert spec(sig.inputs) == {"images": (f, [-1, h, w, ch]), "target_class": (i, None), **request}
        expected = dict(explain_outputs)
        if name == "explain_integrated_gradients":
            expected |= {"attributions": (f, None), "approximation_error": (f, None)}
        assert spec(sig.outputs) == expected
        assert sorted(sig.defaults) == sorted(["target_class", *request])
        np.testing.assert_array_equal(tf.make_ndarray(sig.defaults["target_class"]), [-1])


@pytest.mark.integration
def test_report_lists_the_verified_methods(conv_export):
    import json

    report = json.loads((conv_export[1] / "assets.extra" / "export_report.json").read_text())
    assert set(report["verification"]["methods"]) == set(NEW)
    assert report["export"]["methods"]["enabled"] == list(ALL.enabled)


@pytest.mark.integration
@pytest.mark.parametrize("target", [None, np.array([2], np.int32)])
def test_each_method_matches_the_eager_reference(conv_export, conv_saved, target):
    model, _ = conv_export
    copy, x = LogitsCopy.of(model), samples(3, seed=11)
    feed = {"images": x} if target is None else {"images": x, "target_class": target}
    refs = {
        "explain_smoothgrad": methods.get("smoothgrad").reference(
            copy, x, target, "max_abs", SmoothGradParams(samples=8, noise=0.15, seed=0)
        ),
        "explain_integrated_gradients": methods.get("integrated_gradients").reference(
            copy, x, target, "max_abs", IntegratedGradientsParams(steps=32, baseline=0.0)
        ),
        "explain_gradient_x_input": methods.get("gradient_x_input").reference(
            copy, x, target, "max_abs", methods.NoParams()
        ),
    }
    for name, ref in refs.items():
        out = conv_saved.run(name, feed)
        np.testing.assert_array_equal(out["target_class"], ref["target_class"])
        np.testing.assert_allclose(out["logits"], ref["logits"], atol=1e-5)
        np.testing.assert_allclose(out["saliency"], ref["saliency"], atol=1e-4)
        assert out["saliency"].min() >= 0 and out["saliency"].max() <= 1
        if "attributions" in ref:
            np.testing.assert_allclose(out["attributions"], ref["attributions"], atol=1e-5)
            np.testing.assert_allclose(out["approximation_error"], ref["approximation_error"], atol=1e-4)


@pytest.mark.integration
def test_integrated_gradients_is_complete_on_a_linear_model(linear_saved):
    _, saved = linear_saved
    out = saved.run("explain_integrated_gradients", {"images": samples(4), "target_class": np.array([1], np.int32)})
    assert out["approximation_error"].max() < 1e-5


@pytest.mark.integration
def test_integrated_gradients_error_is_small_on_conv_models(conv_saved, tmp_path):
    assert conv_saved.run("explain_integrated_gradients", {"images": samples(8)})["approximation_error"].max() < 0.01
    # A ReLU + BatchNorm network with the default 64 steps.
    path = export(sequential_bn_model(), tmp_path, ExportConfig(methods=MethodsConfig(enabled=("integrated_gradients",))))
    with Tf1SavedModel(path) as saved:
        error = saved.run("explain_integrated_gradients", {"images": samples(8)})["approximation_error"]
    assert error.max() < 0.05


@pytest.mark.integration
def test_gradient_x_input_on_a_linear_model_is_weight_times_input(linear_saved):
    model, saved = linear_saved
    x, target = samples(3, seed=4), 3
    out = saved.run("explain_gradient_x_input", {"images": x, "target_class": np.array([target], np.int32)})
    weight = model.get_layer("head").kernel.numpy()[:, target].reshape(INPUT_SHAPE)
    expected = np.abs(weight[None] * x).max(axis=-1)
    low, high = expected.min(axis=(1, 2), keepdims=True), expected.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(out["saliency"], (expected - low) / (high - low), atol=1e-5)


@pytest.mark.integration
def test_smoothgrad_on_a_linear_model_equals_vanilla_whatever_the_noise(linear_saved):
    # The gradient of a linear model is the same at every noisy copy.
    _, saved = linear_saved
    x = samples(3)
    np.testing.assert_allclose(
        saved.run("explain_smoothgrad", {"images": x})["saliency"], saved.run("explain", {"images": x})["saliency"], atol=1e-5
    )


@pytest.mark.integration
def test_smoothgrad_with_zero_noise_equals_vanilla():
    model = sequential_bn_model()
    config = MethodsConfig(enabled=("smoothgrad",), params=[SmoothGradParams(noise=0.0, samples=4)])
    signatures = SaliencyExporter(model, ExportConfig(methods=config)).signatures
    x, target = tf.constant(samples(4)), tf.constant([-1], tf.int32)
    smooth = signatures["explain_smoothgrad"](x, target)["saliency"].numpy()
    vanilla = signatures["explain"](x, target)["saliency"].numpy()
    np.testing.assert_allclose(smooth, vanilla, atol=1e-6)
    np.testing.assert_allclose(vanilla, reference_explain(LogitsCopy.of(model), samples(4), None, "max_abs")["saliency"], atol=1e-5)


@pytest.mark.integration
def test_smoothgrad_is_deterministic_and_independent_of_the_batch(conv_saved):
    x = samples(4, seed=9)
    first = conv_saved.run("explain_smoothgrad", {"images": x})["saliency"]
    second = conv_saved.run("explain_smoothgrad", {"images": x})["saliency"]
    np.testing.assert_array_equal(first, second)
    alone = conv_saved.run("explain_smoothgrad", {"images": x[2:3]})["saliency"]
    np.testing.assert_allclose(alone[0], first[2], atol=1e-5)
    # The noise is real: SmoothGrad differs from vanilla on a non-linear model.
    assert np.abs(first - conv_saved.run("explain", {"images": x})["saliency"]).max() > 1e-3


@pytest.mark.integration
@pytest.mark.parametrize("chunk", [1, 3])
def test_chunking_gives_the_result_of_one_big_chunk(chunk):
    model, x, target = logits_model(), tf.constant(samples(3)), tf.constant([-1], tf.int32)

    def run(internal_batch: int) -> dict[str, np.ndarray]:
        config = dataclasses.replace(ALL, enabled=("smoothgrad", "integrated_gradients"), internal_batch=internal_batch)
        sigs = SaliencyExporter(model, ExportConfig(methods=config)).signatures
        return {
            "sg": sigs["explain_smoothgrad"](x, target)["saliency"].numpy(),
            "ig": sigs["explain_integrated_gradients"](x, target)["attributions"].numpy(),
        }

    big, small = run(1000), run(chunk)
    np.testing.assert_allclose(small["sg"], big["sg"], atol=1e-5)
    np.testing.assert_allclose(small["ig"], big["ig"], atol=1e-6)


def test_method_config_tables_are_parsed_and_checked():
    config = config_from_mapping(
        {
            "methods": {
                "enabled": ["integrated_gradients", "smoothgrad"],
                "internal_batch": 8,
                "smoothgrad": {"samples": 4, "noise": 0.0, "input_range": [-1, 1], "seed": 3},
                "integrated_gradients": {"steps": 10, "baseline": -1.0},
            }
        }
    )
    assert config.methods == MethodsConfig(
        enabled=("vanilla", "smoothgrad", "integrated_gradients"),
        internal_batch=8,
        params=[
            SmoothGradParams(samples=4, noise=0.0, input_range=(-1.0, 1.0), seed=3),
            IntegratedGradientsParams(steps=10, baseline=-1.0),
        ],
    )
    assert ExportConfig().methods.enabled == ("vanilla",)
    with pytest.raises(ConfigError, match="Unknown explanation method 'lime'"):
        config_from_mapping({"methods": {"enabled": ["lime"]}})
    with pytest.raises(ConfigError, match=r"Unknown key methods\.smoothgrad\.sigma in \[methods\.smoothgrad\]"):
        config_from_mapping({"methods": {"smoothgrad": {"sigma": 0.1}}})
    with pytest.raises(ConfigError, match=r"methods\.smoothgrad\.noise must be >= 0"):
        config_from_mapping({"methods": {"smoothgrad": {"noise": -0.1}}})


@pytest.mark.integration
def test_cli_methods_flag_exports_the_named_signatures(tmp_path):
    from exporter.cli import main

    model_path = tmp_path / "m.keras"
    logits_model().save(model_path)
    assert main(["--model", str(model_path), "--output", str(tmp_path / "out"), "-q", "--methods", "gradient_x_input"]) == 0
    assert set(_signature_defs(tmp_path / "out" / "1")) - {"__saved_model_init_op"} == {
        "serving_default", "explain", "explain_gradient_x_input"
    }
    assert main(["--model", str(model_path), "--output", str(tmp_path / "out"), "-q", "--methods", "vanilla,nope"]) == 1


def test_numpy_saliency_of_zero_attributions_is_zero_not_nan():
    assert not np.isnan(numpy_saliency(np.zeros((1, 2, 2, 1)), "max_abs")).any()
