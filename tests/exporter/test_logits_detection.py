"""Each supported classifier head yields the pre-softmax logits, and the map follows them."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from exporter import (
    ExportConfig,
    LogitsNotFoundError,
    Tf1SavedModel,
    UnsupportedModelError,
    find_logits,
)
from exporter._reference import LogitsCopy, numpy_saliency
from tests.exporter.helpers import (
    INPUT_SHAPE,
    export,
    fused_softmax_model,
    logits_model,
    samples,
    sequential_bn_model,
    sigmoid_model,
    softmax_layer_model,
)

pytestmark = pytest.mark.integration


def _manual_logits(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """Logits computed by hand from the model's layers: trunk output @ kernel + bias."""
    head = model.get_layer("head")
    trunk = keras.Model(model.inputs[0], model.get_layer("flatten").output)
    features = np.asarray(trunk(images, training=False))
    return features @ np.asarray(head.kernel) + np.asarray(head.bias)


CASES = {
    "fused_softmax": (fused_softmax_model, "fused_softmax"),
    "softmax_layer_after_dropout": (softmax_layer_model, "softmax_layer"),
    "activation_softmax_layer": (lambda: softmax_layer_model(activation_layer=True), "softmax_layer"),
    "already_logits": (logits_model, "logits_output"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_export_explains_the_pre_softmax_logit(case, tmp_path):
    build, kind = CASES[case]
    model = build()
    x = samples()
    before = np.asarray(model(x, training=False))
    assert find_logits(model).kind == kind

    path = export(model, tmp_path)
    with Tf1SavedModel(path) as saved:
        out = saved.run("explain", {"images": x})
        probabilities = saved.run("serving_default", {"images": x})["probabilities"]

    expected_logits = _manual_logits(model, x)
    np.testing.assert_allclose(out["logits"], expected_logits, atol=1e-5)
    if kind == "logits_output":
        expected_probabilities = np.exp(before) / np.exp(before).sum(-1, keepdims=True)
    else:
        expected_probabilities = before
    np.testing.assert_allclose(probabilities, expected_probabilities, atol=1e-6)
    np.testing.assert_array_equal(out["predicted_class"], expected_logits.argmax(-1))
    # The user's model is untouched by the export.
    np.testing.assert_array_equal(np.asarray(model(x, training=False)), before)
    reference = LogitsCopy.of(model).gradient(x, out["target_class"])
    np.testing.assert_allclose(out["saliency"], numpy_saliency(reference, "max_abs"), atol=1e-5)


def test_sigmoid_binary_uses_plus_logit_for_class_1_and_minus_for_class_0(tmp_path):
    model = sigmoid_model()
    x = samples()
    z = _manual_logits(model, x)[:, 0]
    path = export(model, tmp_path)
    with Tf1SavedModel(path) as saved:
        pred = saved.run("serving_default", {"images": x})
        one = saved.run("explain", {"images": x, "target_class": np.array([1], np.int32)})
        zero = saved.run("explain", {"images": x, "target_class": np.array([0], np.int32)})
    p = np.asarray(model(x, training=False))[:, 0]
    np.testing.assert_allclose(pred["logits"], np.stack([-z, z], -1), atol=1e-5)
    np.testing.assert_allclose(pred["probabilities"], np.stack([1 - p, p], -1), atol=1e-6)
    np.testing.assert_array_equal(pred["predicted_class"], (z > 0).astype(np.int32))
    # d(+z)/dx and d(-z)/dx have the same magnitude: the max_abs maps coincide.
    np.testing.assert_allclose(one["saliency"], zero["saliency"], atol=1e-6)
    copy = LogitsCopy.of(model)
    np.testing.assert_allclose(
        copy.gradient(x, np.zeros(len(x), np.int32)), -copy.gradient(x, np.ones(len(x), np.int32)), atol=1e-6
    )


def test_sequential_with_batchnorm_and_dropout_runs_in_inference_mode(tmp_path):
    model = sequential_bn_model()
    x = samples()
    path = export(model, tmp_path)
    with Tf1SavedModel(path) as saved:
        first = saved.run("explain", {"images": x})
        second = saved.run("explain", {"images": x})
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    np.testing.assert_allclose(first["probabilities"], np.asarray(model(x, training=False)), atol=1e-6)


def test_unrecognised_head_is_refused_with_logits_layer_hint():
    inputs = keras.Input(INPUT_SHAPE)
    x = keras.layers.Flatten()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(4, activation="relu", name="relu_head")(x))
    with pytest.raises(LogitsNotFoundError, match="--logits-layer"):
        find_logits(model)


def test_multilabel_sigmoid_is_refused():
    inputs = keras.Input(INPUT_SHAPE)
    x = keras.layers.Flatten()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="sigmoid")(x))
    with pytest.raises(UnsupportedModelError, match="multi-label"):
        find_logits(model)


def test_logits_layer_override_names_the_logits(tmp_path):
    # A relu head is not auto-detectable; naming the layer before it is accepted.
    keras.utils.set_random_seed(6)
    inputs = keras.Input(INPUT_SHAPE)
    x = keras.layers.Flatten(name="flatten")(inputs)
    logits = keras.layers.Dense(4, name="head")(x)
    model = keras.Model(inputs, keras.layers.Activation("softmax", name="act")(keras.layers.Activation("linear")(logits)))
    head = find_logits(model, "head")
    assert (head.kind, head.layer_name, head.num_classes) == ("named_layer", "head", 4)
    path = export(model, tmp_path, ExportConfig(logits_layer="head"))
    x_in = samples()
    with Tf1SavedModel(path) as saved:
        out = saved.run("serving_default", {"images": x_in})
    np.testing.assert_allclose(out["logits"], np.asarray(model.get_layer("head").output is not None and keras.Model(model.inputs[0], logits)(x_in)), atol=1e-5)


def test_unknown_logits_layer_lists_the_layers():
    with pytest.raises(LogitsNotFoundError, match="'head'"):
        find_logits(fused_softmax_model(), "nope")


def test_multi_input_model_is_refused():
    a, b = keras.Input(INPUT_SHAPE), keras.Input(INPUT_SHAPE)
    x = keras.layers.Flatten()(keras.layers.Add()([a, b]))
    model = keras.Model([a, b], keras.layers.Dense(2, activation="softmax")(x))
    from exporter import SaliencyExporter

    with pytest.raises(UnsupportedModelError, match="exactly one input"):
        SaliencyExporter(model)
