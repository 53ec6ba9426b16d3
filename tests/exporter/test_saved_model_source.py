"""Existing SavedModel directories as export input (`saliency-export --model DIR`).

Each source model is written the way users write theirs (Keras 3 `model.export`,
`tf.saved_model.save` of a `tf.Module`), exported, and the export is run through the TF1
session loader (TF Serving's path). The references are independent of the exporter:
the analytic gradient of a linear module (d z_k / d x is the weight column k), or an
eager GradientTape on a logits copy of the Keras model the SavedModel was written from;
probabilities are compared with the original signature.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from exporter import (
    ConfigError,
    ExportConfig,
    LogitsNotFoundError,
    ModelLoadError,
    Tf1SavedModel,
    VerificationError,
    export_model,
)
from exporter._config import MethodsConfig
from exporter._loading import load_keras_model
from exporter._reference import LogitsCopy, numpy_saliency
from exporter._saved_model_source import load_saved_model, saved_model_fingerprint
from exporter.cli import main as cli_main
from tests.exporter.helpers import INPUT_SHAPE, samples

pytestmark = pytest.mark.integration

FLAT = int(np.prod(INPUT_SHAPE))
SPEC = tf.TensorSpec([None, *INPUT_SHAPE], tf.float32, name="x")
REPORT = Path("assets.extra") / "export_report.json"


class LinearSoftmax(tf.Module):
    """z = flatten(x) W + b over its own tf.Variables; three signatures over the same z."""

    def __init__(self, classes: int = 3, seed: int = 0) -> None:
        super().__init__()
        rng = np.random.default_rng(seed)
        self.w = tf.Variable(rng.normal(size=(FLAT, classes)).astype(np.float32), name="w")
        self.b = tf.Variable(rng.normal(size=classes).astype(np.float32), name="b")

    def z(self, x: tf.Tensor) -> tf.Tensor:
        return tf.matmul(tf.reshape(x, [-1, FLAT]), self.w) + self.b

    @tf.function(input_signature=[SPEC])
    def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"probabilities": tf.nn.softmax(self.z(x))}

    @tf.function(input_signature=[SPEC])
    def tempered(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"probabilities": tf.nn.softmax(self.z(x) / 2.0)}

    @tf.function(input_signature=[SPEC])
    def scores(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"scores": self.z(x)}

    @tf.function(input_signature=[SPEC])
    def detailed(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        z = self.z(x)
        return {"scores": z, "probabilities": tf.nn.softmax(z), "class_ids": tf.argmax(z, axis=-1)}


class NestedSoftmax(LinearSoftmax):
    """The softmax sits two tf.function calls deep inside the signature."""

    @tf.function
    def logits(self, x: tf.Tensor) -> tf.Tensor:
        return self.z(x)

    @tf.function
    def head(self, x: tf.Tensor) -> tf.Tensor:
        return tf.nn.softmax(self.logits(x))

    @tf.function(input_signature=[SPEC])
    def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"probabilities": self.head(x)}


class LinearSigmoid(tf.Module):
    """A binary classifier: p = sigmoid(flatten(x) w + b), output [B, 1]."""

    def __init__(self) -> None:
        super().__init__()
        rng = np.random.default_rng(7)
        self.w = tf.Variable(rng.normal(size=(FLAT, 1)).astype(np.float32), name="w")
        self.b = tf.Variable([0.1], dtype=tf.float32, name="b")

    @tf.function(input_signature=[SPEC])
    def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"p": tf.sigmoid(tf.matmul(tf.reshape(x, [-1, FLAT]), self.w) + self.b)}


def keras_model() -> keras.Model:
    keras.utils.set_random_seed(11)
    inputs = keras.Input(INPUT_SHAPE)
    x = keras.layers.Conv2D(3, 3, activation="tanh", name="conv")(inputs)
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, keras.layers.Dense(4, activation="softmax", name="head")(x))


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("saved_model_sources")
    linear, nested, sigmoid = LinearSoftmax(), NestedSoftmax(seed=1), LinearSigmoid()
    signatures = {
        "serving_default": linear.serve,
        "tempered": linear.tempered,
        "scores": linear.scores,
        "detailed": linear.detailed,
    }
    tf.saved_model.save(linear, str(base / "linear"), signatures=signatures)
    tf.saved_model.save(nested, str(base / "nested"), signatures={"serving_default": nested.serve})
    tf.saved_model.save(sigmoid, str(base / "sigmoid"), signatures={"serving_default": sigmoid.serve})
    model = keras_model()
    model.export(str(base / "keras"), verbose=False)
    model.save(base / "keras_twin.keras")
    return {"linear": base / "linear", "nested": base / "nested", "sigmoid": base / "sigmoid", "keras": base / "keras"}


def _weights(module_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    loaded = tf.saved_model.load(str(module_dir))
    return loaded.w.numpy(), loaded.b.numpy()


def _export(source: Path, out: Path, **options) -> tuple[Path, dict]:
    path = export_model(source, out, source_options=options or None)
    return path, json.loads((path / REPORT).read_text())


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _analytic_saliency(w: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """The map of d z_k / d x = W[:, k] (the same for every image of a linear model)."""
    gradient = np.stack([w[:, k].reshape(INPUT_SHAPE) for k in classes])
    return numpy_saliency(gradient, "max_abs")


def _run(path: Path, x: np.ndarray, target: np.ndarray | None = None) -> tuple[dict, dict]:
    with Tf1SavedModel(path) as saved:
        predict = saved.run("serving_default", {"images": x})
        feed = {"images": x} if target is None else {"images": x, "target_class": target}
        return predict, saved.run("explain", feed)


def test_tf_module_softmax_exports_with_the_analytic_gradient(sources, tmp_path):
    path, report = _export(sources["linear"], tmp_path / "out")
    w, b = _weights(sources["linear"])
    x = samples(5)
    z = x.reshape(len(x), -1) @ w + b
    predict, explain = _run(path, x)
    np.testing.assert_allclose(predict["logits"], z, atol=1e-4)
    np.testing.assert_allclose(predict["probabilities"], _softmax(z), atol=1e-6)
    np.testing.assert_array_equal(explain["target_class"], z.argmax(axis=-1))
    np.testing.assert_allclose(explain["saliency"], _analytic_saliency(w, z.argmax(axis=-1)), atol=1e-5)
    other = ((z.argmax(axis=-1) + 1) % 3).astype(np.int32)
    _, explain_other = _run(path, x, other)
    np.testing.assert_allclose(explain_other["saliency"], _analytic_saliency(w, other), atol=1e-5)

    model = report["model"]
    assert model["logits"]["kind"] == "saved_model_softmax_op"
    assert model["logits"]["layer"].endswith(":0")
    assert model["saved_model"]["signature"] == "serving_default"
    assert model["saved_model"]["input"] == {"key": "x", "shape": [None, *INPUT_SHAPE]}
    assert model["saved_model"]["activation_op"].endswith("Softmax")
    assert model["hash"] == saved_model_fingerprint(sources["linear"])
    checks = model["saved_model"]["original_signature_checks"]
    assert checks["compared_as"] == "probabilities"
    assert checks["gradient_max_error_relative_to_max_gradient"] < 1e-4
    verification = report["verification"]
    assert verification["probabilities_max_abs_diff"] <= 1e-6
    assert verification["finite_differences"]["max_error_relative_to_max_gradient"] < 1e-2

    # The weights stay variables of the export (restored from its checkpoint), not constants.
    reader = tf.train.load_checkpoint(str(path / "variables" / "variables"))
    stored = [reader.get_tensor(name) for name, shape in reader.get_variable_to_shape_map().items() if shape == list(w.shape)]
    assert any(np.array_equal(value, w) for value in stored)


def test_signature_flag_picks_a_non_default_signature(sources, tmp_path):
    path, report = _export(sources["linear"], tmp_path / "out", signature="tempered")
    w, b = _weights(sources["linear"])
    x = samples(4, seed=3)
    z = (x.reshape(len(x), -1) @ w + b) / 2.0
    predict, explain = _run(path, x)
    np.testing.assert_allclose(predict["logits"], z, atol=1e-4)
    np.testing.assert_allclose(predict["probabilities"], _softmax(z), atol=1e-6)
    # W / 2 and W give the same normalized map.
    np.testing.assert_allclose(explain["saliency"], _analytic_saliency(w, z.argmax(axis=-1)), atol=1e-5)
    assert report["model"]["saved_model"]["signature"] == "tempered"


def test_sigmoid_binary_saved_model(sources, tmp_path):
    path, report = _export(sources["sigmoid"], tmp_path / "out")
    w, b = _weights(sources["sigmoid"])
    x = samples(4, seed=6)
    z = x.reshape(len(x), -1) @ w + b
    predict, explain = _run(path, x)
    p = 1.0 / (1.0 + np.exp(-z))
    np.testing.assert_allclose(predict["logits"], np.concatenate([-z, z], axis=-1), atol=1e-4)
    np.testing.assert_allclose(predict["probabilities"], np.concatenate([1 - p, p], axis=-1), atol=1e-6)
    # d(±z)/dx = ±w: the same max-abs map for both classes.
    np.testing.assert_allclose(explain["saliency"], _analytic_saliency(w, np.zeros(len(x), int)), atol=1e-5)
    assert report["model"]["logits"]["kind"] == "saved_model_sigmoid_op"
    assert report["model"]["num_classes"] == 2
    assert report["model"]["saved_model"]["original_signature_checks"]["gradient_identity"].startswith("grad z =")


def test_keras_export_matches_a_logits_copy_of_the_keras_model(sources, tmp_path):
    path, report = _export(sources["keras"], tmp_path / "out")
    model = keras.saving.load_model(sources["keras"].parent / "keras_twin.keras")
    copy = LogitsCopy.of(model)
    x = samples(5, seed=8)
    predict, explain = _run(path, x)
    target = copy.logits(x).argmax(axis=-1)
    np.testing.assert_allclose(predict["logits"], copy.logits(x), atol=1e-4)
    np.testing.assert_allclose(predict["probabilities"], model(x).numpy(), atol=1e-6)
    np.testing.assert_allclose(explain["saliency"], numpy_saliency(copy.gradient(x, target), "max_abs"), atol=1e-4)
    assert report["model"]["logits"]["kind"] == "saved_model_softmax_op"
    # The key is the Keras input's name, numbered by how many tensors the process made before.
    (key,) = tf.saved_model.load(str(sources["keras"])).signatures["serving_default"].structured_input_signature[1]
    assert report["model"]["saved_model"]["input"]["key"] == key


def test_tf_keras_model_save_directory_matches_the_tf_keras_logits(tmp_path):
    """A Keras-2-style `model.save(dir)` (tf_keras): BatchNorm and Dropout, so inference mode matters."""
    import tf_keras

    tf_keras.utils.set_random_seed(3)
    model = tf_keras.Sequential(
        [
            tf_keras.Input(INPUT_SHAPE),
            tf_keras.layers.Conv2D(3, 3, activation="relu"),
            tf_keras.layers.BatchNormalization(),
            tf_keras.layers.Flatten(),
            tf_keras.layers.Dropout(0.5),
            tf_keras.layers.Dense(4),
            tf_keras.layers.Activation("softmax"),
        ]
    )
    model.layers[1].moving_mean.assign(np.full(3, 0.3, np.float32))
    model.layers[1].moving_variance.assign(np.full(3, 2.0, np.float32))
    model.save(tmp_path / "tf_keras", save_format="tf")
    path, report = _export(tmp_path / "tf_keras", tmp_path / "out")

    logits_model = tf_keras.Model(model.inputs, model.layers[-2].output)
    x = samples(4, seed=10)
    z = logits_model(x, training=False).numpy()
    with tf.GradientTape() as tape:
        images = tf.constant(x)
        tape.watch(images)
        selected = tf.gather(logits_model(images, training=False), z.argmax(axis=-1), axis=1, batch_dims=1)
    gradient = tape.gradient(selected, images).numpy()
    predict, explain = _run(path, x)
    np.testing.assert_allclose(predict["logits"], z, atol=1e-4)
    np.testing.assert_allclose(predict["probabilities"], model(x, training=False).numpy(), atol=1e-6)
    np.testing.assert_allclose(explain["saliency"], numpy_saliency(gradient, "max_abs"), atol=1e-4)
    assert report["model"]["logits"]["kind"] == "saved_model_softmax_op"


def test_linear_output_is_refused_then_exported_with_logits_tensor(sources, tmp_path):
    with pytest.raises(LogitsNotFoundError, match="not produced by a Softmax or Sigmoid") as refused:
        load_saved_model(sources["linear"], signature="scores")
    message = str(refused.value)
    assert "--logits-tensor" in message
    named = re.search(r"name that tensor \('([^']+)'\)", message).group(1)

    path, report = _export(sources["linear"], tmp_path / "out", signature="scores", logits_tensor=named)
    w, b = _weights(sources["linear"])
    x = samples(4, seed=9)
    z = x.reshape(len(x), -1) @ w + b
    predict, explain = _run(path, x)
    np.testing.assert_allclose(predict["logits"], z, atol=1e-4)
    np.testing.assert_allclose(predict["probabilities"], _softmax(z), atol=1e-6)
    np.testing.assert_allclose(explain["saliency"], _analytic_saliency(w, z.argmax(axis=-1)), atol=1e-5)
    assert report["model"]["logits"] == {"kind": "saved_model_named_tensor", "layer": named}
    assert report["model"]["saved_model"]["original_signature_checks"]["compared_as"] == "logits"


def test_a_wrongly_named_logits_tensor_fails_against_the_original_signature(sources, tmp_path):
    """softmax(x W) (the MatMul, before the bias) is not what the signature outputs."""
    right = load_saved_model(sources["linear"]).logits.name
    wrong = right.replace("/add:0", "/MatMul:0")
    load_saved_model(sources["linear"], logits_tensor=wrong)  # the tensor exists
    with pytest.raises(VerificationError, match=r"does not reproduce the signature's probabilities"):
        export_model(sources["linear"], tmp_path / "out", source_options={"logits_tensor": wrong})
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_settings_that_need_keras_layers_are_refused_for_a_directory(sources, tmp_path):
    with pytest.raises(ConfigError, match="--logits-tensor"):
        export_model(sources["linear"], tmp_path / "out", config=ExportConfig(logits_layer="dense"))
    gradcam = ExportConfig(methods=MethodsConfig(enabled=("gradcam",)))
    with pytest.raises(ConfigError, match="gradcam method is not supported for a SavedModel directory"):
        export_model(sources["linear"], tmp_path / "out", config=gradcam)


def test_of_several_outputs_the_one_a_softmax_produces_is_explained(sources):
    source = load_saved_model(sources["linear"], signature="detailed")
    w, b = _weights(sources["linear"])
    x = samples(3, seed=4)
    assert source.output_key == "probabilities"
    assert source.logits.kind == "saved_model_softmax_op"
    np.testing.assert_allclose(source.head.logits_fn(tf.constant(x)).numpy(), x.reshape(3, -1) @ w + b, atol=1e-4)
    np.testing.assert_allclose(source.reference(tf.constant(x)).numpy(), x.reshape(3, -1) @ w + b, atol=1e-4)


def test_unknown_signature_and_tensor_are_refused_with_the_choices(sources, tmp_path):
    with pytest.raises(ModelLoadError, match=r"no signature 'nope'.*'detailed'.*'scores'.*'serving_default'"):
        load_saved_model(sources["linear"], signature="nope")
    with pytest.raises(LogitsNotFoundError, match="is not a tensor of the signature's graph"):
        load_saved_model(sources["linear"], logits_tensor="no/such/op:0")
    with pytest.raises(ModelLoadError, match="Expected a SavedModel directory"):
        export_model(tmp_path, tmp_path / "out")
    # Where a Keras model is needed (e.g. the evaluation CLI), a directory is named as such.
    with pytest.raises(ModelLoadError, match="is a directory. A SavedModel directory is exported with"):
        load_keras_model(sources["linear"])


def test_cli_exports_a_saved_model_whose_softmax_sits_in_nested_tf_functions(sources, tmp_path, capsys):
    out = tmp_path / "models"
    assert cli_main(["--model", str(sources["nested"]), "--output", str(out), "-q"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert printed == str(out / "1")
    w, b = _weights(sources["nested"])
    x = samples(4, seed=5)
    z = x.reshape(len(x), -1) @ w + b
    predict, explain = _run(out / "1", x)
    np.testing.assert_allclose(predict["logits"], z, atol=1e-4)
    np.testing.assert_allclose(explain["saliency"], _analytic_saliency(w, z.argmax(axis=-1)), atol=1e-5)
    report = json.loads((out / "1" / REPORT).read_text())
    assert report["model"]["logits"]["kind"] == "saved_model_softmax_op"

    assert cli_main(["--model", str(sources["linear"]), "--signature", "scores", "--output", str(out), "-q"]) == 1
    assert "--logits-tensor" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["1"]  # nothing published by the refusal
