"""XRAI's in-graph half (`explain_xrai`) against PAIR's `saliency.core.XRAI`, its completeness,
its export and verification, and the whole of XRAI over gRPC from the bundled server.

PAIR's implementation (pip `saliency`, dev extra) is the independent reference: its IG gets
its gradients from an eager `tf.GradientTape` on the Keras model through a numpy
call_model_function; the export is run as TF Serving loads it (the TF1 session loader) and,
once, served by the bundled server and explained by `serving_client` plus
`serving_client.xrai` (the region map, compared with PAIR's on the served attributions).
"""

from __future__ import annotations

import json
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from exporter import ConfigError, ExportConfig, SaliencyExporter, Tf1SavedModel
from exporter._config import MethodsConfig, config_from_mapping
from exporter.methods.xrai import XraiParams
from tests.client.xrai_scene import synthetic_scene
from tests.exporter.helpers import export, linear_head_model, logits_model, samples

saliency_core = pytest.importorskip("saliency.core")

SIGNATURE = "explain_xrai"
SHAPE = (64, 64, 3)
PARAMS = XraiParams(steps=12)


def _methods(params: XraiParams, internal_batch: int = 10) -> MethodsConfig:
    # 10 does not divide 2 × 12 path points: the last chunk is padded.
    return MethodsConfig(enabled=("xrai",), internal_batch=internal_batch, params=[params])


def _scene_model() -> keras.Model:
    keras.utils.set_random_seed(11)
    inputs = keras.Input(SHAPE)
    x = keras.layers.Conv2D(4, 5, strides=4, activation="tanh", name="conv")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, name="head")(keras.layers.Flatten()(x)))


def _call_model_function(model: keras.Model):
    def call_model_function(batch, call_model_args=None, expected_keys=None):
        x = tf.constant(np.asarray(batch, np.float32))
        with tf.GradientTape() as tape:
            tape.watch(x)
            selected = model(x, training=False)[:, call_model_args["target"]]
        return {saliency_core.INPUT_OUTPUT_GRADIENTS: tape.gradient(selected, x).numpy()}

    return call_model_function


def _pair_xrai(model, image, target, steps, baselines=None, base_attribution=None):
    parameters = saliency_core.XRAIParameters(
        steps=steps, return_ig_attributions=True, return_xrai_segments=True, flatten_xrai_segments=False
    )
    return saliency_core.XRAI().GetMaskWithDetails(
        image, _call_model_function(model), call_model_args={"target": target}, baselines=baselines,
        base_attribution=base_attribution, batch_size=16, extra_parameters=parameters,
    )


def _images() -> np.ndarray:
    return np.stack([synthetic_scene(SHAPE[0], seed=s) for s in (1, 2)])


@pytest.fixture(scope="module")
def scene_export(tmp_path_factory):
    model = _scene_model()
    path = export(model, tmp_path_factory.mktemp("xrai") / "scene", ExportConfig(name="scene", methods=_methods(PARAMS)))
    with Tf1SavedModel(path) as saved:
        yield model, path, saved


@pytest.mark.integration
def test_served_attributions_equal_pairs_xrai_ig(scene_export):
    model, _, saved = scene_export
    x = _images()
    out = saved.run(SIGNATURE, {"images": x, "target_class": np.array([1], np.int32)})
    black, white = np.zeros(SHAPE, np.float32), np.ones(SHAPE, np.float32)
    for i in range(len(x)):
        pair = _pair_xrai(model, x[i], 1, PARAMS.steps, baselines=[black, white])
        reference = np.mean(pair.ig_attribution, axis=0)
        diff = np.abs(out["attributions"][i] - reference).max()
        print(f"XRAI IG vs PAIR (64x64x3 conv, steps {PARAMS.steps}): max abs diff {diff:.1e} of {np.abs(reference).max():.2e}")
        assert diff <= 1e-5 * np.abs(reference).max()
    assert out["saliency"].shape == (2, 64, 64) and out["saliency"].min() >= 0 and out["saliency"].max() <= 1


@pytest.mark.integration
def test_per_request_steps_give_each_image_its_own_path(scene_export):
    # Mixed steps in one request (TF1 session): each image as PAIR computes it with its own steps.
    model, _, saved = scene_export
    x = _images()
    steps = np.array([5, 9], np.int32)
    out = saved.run(SIGNATURE, {"images": x, "target_class": np.array([0], np.int32), "steps": steps})
    black, white = np.zeros(SHAPE, np.float32), np.ones(SHAPE, np.float32)
    for i in range(len(x)):
        pair = _pair_xrai(model, x[i], 0, int(steps[i]), baselines=[black, white])
        reference = np.mean(pair.ig_attribution, axis=0)
        assert np.abs(out["attributions"][i] - reference).max() <= 1e-5 * np.abs(reference).max()
    alone = saved.run(SIGNATURE, {"images": x[1:], "target_class": np.array([0], np.int32), "steps": steps[1:]})
    np.testing.assert_allclose(out["attributions"][1], alone["attributions"][0], atol=1e-7)
    sig = saved.signature_defs[SIGNATURE]
    np.testing.assert_array_equal(tf.make_ndarray(sig.defaults["steps"]), [PARAMS.steps])
    for bad in (1, PARAMS.max_steps + 1):
        with pytest.raises(tf.errors.InvalidArgumentError, match=rf"steps out of range: expected 2 <= steps <= {PARAMS.max_steps}"):
            saved.run(SIGNATURE, {"images": x[:1], "steps": np.array([bad], np.int32)})


@pytest.mark.integration
def test_approximation_error_is_completeness_against_the_mean_baseline_output(scene_export):
    # Recomputed from outside: F(x) − ½ (F(black) + F(white)), Vertex's averaged baseline output.
    model, _, saved = scene_export
    x = _images()
    out = saved.run(SIGNATURE, {"images": x})
    rows, target = np.arange(len(x)), out["target_class"]
    constant = model(np.stack([np.zeros(SHAPE), np.ones(SHAPE)]).astype(np.float32)).numpy().mean(axis=0)
    delta = model(x).numpy()[rows, target] - constant[target]
    expected = np.abs(out["attributions"].sum(axis=(1, 2, 3)) - delta) / np.abs(delta)
    np.testing.assert_allclose(out["approximation_error"], expected, rtol=1e-3, atol=1e-6)


@pytest.mark.integration
def test_the_export_verifies_and_loads_in_tf_servings_cpp_runtime(scene_export):
    _, path, saved = scene_export
    report = json.loads((path / "assets.extra" / "export_report.json").read_text())
    checks = report["verification"]["methods"][SIGNATURE]
    for key in ("saliency", "attributions_relative", "approximation_error"):
        assert checks[f"{key}_predicted_class_max_abs_diff"] <= 1e-3, key
    cpp = report["verification"]["cpp_loader"]
    assert cpp["max_abs_diff"] == 0.0 and set(cpp["signatures"][SIGNATURE]) == {
        "default_inputs_max_abs_diff", "all_inputs_max_abs_diff"}
    sig = saved.signature_defs[SIGNATURE]
    f, i = tf.float32.as_datatype_enum, tf.int32.as_datatype_enum

    def spec(infos):  # None: unknown rank (target_class [batch] or [batch, K], and what follows it)
        return {
            alias: (t.dtype, None if t.tensor_shape.unknown_rank else [d.size for d in t.tensor_shape.dim])
            for alias, t in infos.items()
        }

    assert spec(sig.inputs) == {"images": (f, [-1, *SHAPE]), "target_class": (i, None), "steps": (i, [-1])}
    assert spec(sig.outputs) == {
        "logits": (f, [-1, 3]), "probabilities": (f, [-1, 3]), "predicted_class": (i, [-1]),
        "target_class": (i, None), "saliency": (f, None), "attributions": (f, None),
        "approximation_error": (f, None),
    }
    np.testing.assert_array_equal(tf.make_ndarray(sig.defaults["target_class"]), [-1])
    with pytest.raises(tf.errors.InvalidArgumentError, match="target_class out of range"):
        saved.run(SIGNATURE, {"images": _images()[:1], "target_class": np.array([3], np.int32)})


@pytest.mark.integration
def test_signature_cost_relative_to_explain(scene_export):
    # Measured for docs/methods.md (2 × steps gradient passes against explain's one).
    _, _, saved = scene_export
    x = np.repeat(_images(), 4, axis=0)

    def seconds(signature: str) -> float:
        saved.run(signature, {"images": x})
        start = time.perf_counter()
        for _ in range(3):
            saved.run(signature, {"images": x})
        return (time.perf_counter() - start) / 3

    xrai, vanilla = seconds(SIGNATURE), seconds("explain")
    print(f"explain_xrai (steps {PARAMS.steps}) {xrai / len(x) * 1000:.1f} ms/image, explain "
          f"{vanilla / len(x) * 1000:.2f} ms/image: {xrai / vanilla:.0f}x")
    assert xrai > vanilla


@pytest.mark.integration
@pytest.mark.e2e
def test_xrai_over_grpc_equals_pairs_region_map_on_the_served_attributions(scene_export):
    from model_server import ModelServer, ServerOptions
    from serving_client import ServingClient
    from serving_client.xrai import xrai_explanation

    model, path, saved = scene_export
    x = _images()
    options = ServerOptions.single_model("scene", path.parent, port=0, rest_api_port=0)
    with ModelServer(options) as server, ServingClient(f"127.0.0.1:{server.ports.grpc}", "scene", timeout=60.0) as client:
        assert "xrai" in client.methods()
        served = client.explain(x, method="xrai")
    local = saved.run(SIGNATURE, {"images": x})
    np.testing.assert_array_equal(served.attributions, local["attributions"])
    explained = xrai_explanation(served, x)
    for i in range(len(x)):
        pair = _pair_xrai(model, x[i], int(served.target_class[i]), PARAMS.steps, base_attribution=served.attributions[i])
        diff = np.abs(explained.extras["xrai_density"][i] - pair.attribution_mask).max()
        print(f"XRAI region map over gRPC vs PAIR: max abs diff {diff:.1e} of {np.abs(pair.attribution_mask).max():.2e}")
        assert diff <= 1e-5 * np.abs(served.attributions[i]).max()
        ranks = explained.extras["xrai_ranks"][i]
        assert ranks.max() == len(pair.segments)
        for rank, mask in enumerate(pair.segments, start=1):
            np.testing.assert_array_equal(ranks == rank, mask, err_msg=f"region {rank}")
    assert explained.saliency.shape == (2, 64, 64) and explained.saliency.max() == 1.0
    np.testing.assert_array_equal(explained.extras["pixel_saliency"], local["saliency"])


@pytest.mark.integration
def test_xrai_is_complete_on_a_linear_model():
    # The gradient of a linear model is its weight row on the whole path: IG is exact for each
    # baseline, so their mean is exact against the mean baseline output.
    for baselines in ("input_range", "image"):
        signature = SaliencyExporter(
            linear_head_model(), ExportConfig(methods=_methods(XraiParams(steps=5, baselines=baselines)))
        ).signatures[SIGNATURE]
        out = signature(tf.constant(samples(4, seed=8)), tf.constant([2], tf.int32))
        assert out["approximation_error"].numpy().max() < 1e-5, baselines


@pytest.mark.integration
def test_image_baselines_equal_pairs_default_baselines():
    # PAIR's XRAI without baselines uses the image's own min and max: baselines = "image".
    model = logits_model()
    params = XraiParams(steps=7, baselines="image")
    x = samples(2, seed=4)

    def attributions(internal_batch: int) -> tuple[np.ndarray, np.ndarray]:
        sig = SaliencyExporter(model, ExportConfig(methods=_methods(params, internal_batch))).signatures[SIGNATURE]
        out = sig(tf.constant(x), tf.constant([-1], tf.int32))
        return out["attributions"].numpy(), out["target_class"].numpy()

    served, targets = attributions(3)
    for i, target in enumerate(targets):
        reference = np.mean(_pair_xrai(model, x[i], int(target), params.steps).ig_attribution, axis=0)
        assert np.abs(served[i] - reference).max() <= 1e-5 * np.abs(reference).max()
    np.testing.assert_allclose(attributions(1000)[0], served, atol=1e-6)  # internal_batch-free


def test_xrai_config_table_is_parsed_and_checked():
    config = config_from_mapping(
        {"methods": {"enabled": ["xrai"], "xrai": {"steps": 20, "input_range": [-1, 1], "baselines": "image"}}}
    )
    assert config.methods.params["xrai"] == XraiParams(20, (-1.0, 1.0), "image", max_steps=256)
    assert XraiParams(steps=100).max_steps == 400
    with pytest.raises(ConfigError, match=r"methods\.xrai\.steps must be >= 2; received 1"):
        XraiParams(steps=1)
    with pytest.raises(ConfigError, match=r"methods\.xrai\.input_range must be \[low, high\] with low < high; received \[1, 0\]"):
        XraiParams(input_range=(1, 0))
    with pytest.raises(ConfigError, match=r"methods\.xrai\.baselines must be one of input_range, image; received 'blur'"):
        XraiParams(baselines="blur")
    with pytest.raises(ConfigError, match=r"methods\.xrai\.max_steps must be at least steps \(50\); received 10"):
        XraiParams(max_steps=10)
