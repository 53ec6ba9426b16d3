"""Tiny Keras models for exporter tests, and helpers to export and load them."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from exporter import ExportConfig, SaliencyExporter, Tf1SavedModel

INPUT_SHAPE = (6, 6, 2)


def conv_trunk(inputs):
    x = keras.layers.Conv2D(3, 3, activation="tanh", name="conv")(inputs)
    return keras.layers.Flatten(name="flatten")(x)


def fused_softmax_model() -> keras.Model:
    keras.utils.set_random_seed(1)
    inputs = keras.Input(INPUT_SHAPE)
    x = keras.layers.Dropout(0.5, name="dropout")(conv_trunk(inputs))
    return keras.Model(inputs, keras.layers.Dense(4, activation="softmax", name="head")(x))


def softmax_layer_model(activation_layer: bool = False) -> keras.Model:
    keras.utils.set_random_seed(2)
    inputs = keras.Input(INPUT_SHAPE)
    x = keras.layers.Dense(4, name="head")(conv_trunk(inputs))
    x = keras.layers.Dropout(0.3, name="dropout_after_logits")(x)
    final = keras.layers.Activation("softmax", name="act") if activation_layer else keras.layers.Softmax(name="sm")
    return keras.Model(inputs, final(x))


def logits_model() -> keras.Model:
    keras.utils.set_random_seed(3)
    inputs = keras.Input(INPUT_SHAPE)
    return keras.Model(inputs, keras.layers.Dense(4, name="head")(conv_trunk(inputs)))


def sigmoid_model() -> keras.Model:
    keras.utils.set_random_seed(4)
    inputs = keras.Input(INPUT_SHAPE)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", name="head")(conv_trunk(inputs)))


def sequential_bn_model() -> keras.Model:
    keras.utils.set_random_seed(5)
    model = keras.Sequential(
        [
            keras.Input(INPUT_SHAPE),
            keras.layers.Conv2D(3, 3, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    # Non-trivial moving statistics, so inference vs training mode would differ.
    bn = model.layers[1]
    bn.moving_mean.assign(np.full(3, 0.3, np.float32))
    bn.moving_variance.assign(np.full(3, 2.0, np.float32))
    return model


def samples(n: int = 5, shape: tuple[int, ...] = INPUT_SHAPE, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *shape), dtype=np.float32)


def export(model: keras.Model, base: Path, config: ExportConfig | None = None, **kwargs) -> Path:
    return SaliencyExporter(model, config).write(base, **kwargs).path


@pytest.fixture(scope="session")
def fused_export(tmp_path_factory) -> tuple[keras.Model, Path]:
    """A published export of the fused-softmax model, shared by read-only tests."""
    model = fused_softmax_model()
    base = tmp_path_factory.mktemp("fused")
    return model, export(model, base, ExportConfig(name="tiny", class_names=("a", "b", "c", "d")))


@pytest.fixture(scope="session")
def fused_saved(fused_export) -> Tf1SavedModel:
    with Tf1SavedModel(fused_export[1]) as saved:
        yield saved


def assert_path_method_signature_def(saved: Tf1SavedModel, signature: str, classes: int = 4) -> None:
    """A path method's SignatureDef as TF Serving reads it: aliases, dtypes, shapes, the
    `target_class` default of −1, and an out-of-range target refused in the graph."""
    import tensorflow as tf

    sig = saved.signature_defs[signature]
    h, w, ch = INPUT_SHAPE
    f, i = tf.float32.as_datatype_enum, tf.int32.as_datatype_enum

    def spec(infos):  # None: unknown rank (target_class [batch] or [batch, K], and what follows it)
        return {
            alias: (x.dtype, None if x.tensor_shape.unknown_rank else [d.size for d in x.tensor_shape.dim])
            for alias, x in infos.items()
        }

    # Blur IG and Guided IG take a per-request `steps` (int32 [batch], default the export's).
    assert spec(sig.inputs) == {"images": (f, [-1, h, w, ch]), "target_class": (i, None), "steps": (i, [-1])}
    assert sorted(sig.defaults) == ["steps", "target_class"]
    assert spec(sig.outputs) == {
        "logits": (f, [-1, classes]),
        "probabilities": (f, [-1, classes]),
        "predicted_class": (i, [-1]),
        "target_class": (i, None),
        "saliency": (f, None),
        "attributions": (f, None),
        "approximation_error": (f, None),
    }
    np.testing.assert_array_equal(tf.make_ndarray(sig.defaults["target_class"]), [-1])
    with pytest.raises(tf.errors.InvalidArgumentError, match="target_class out of range"):
        saved.run(signature, {"images": samples(1), "target_class": np.array([classes], np.int32)})


def linear_head_model() -> keras.Model:
    """A seeded linear classifier (Flatten → Dense(4)): path methods must be complete on it."""
    keras.utils.set_random_seed(7)
    inputs = keras.Input(INPUT_SHAPE)
    return keras.Model(inputs, keras.layers.Dense(4, name="head")(keras.layers.Flatten()(inputs)))


def assert_explain_equals_eager_keras(model: keras.Model, path: Path, x: np.ndarray) -> None:
    """The export's `explain` (TF1 session and C++ loader) equals an eager tape on `model`."""
    from exporter._cpp_loader import load_saved_model as cpp_load
    from exporter._reference import numpy_saliency

    images = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(images)
        logits = model(images)  # eager: Keras's own backend functions
        predicted = tf.argmax(logits, axis=-1)
        selected = tf.gather(logits, predicted, axis=1, batch_dims=1)
    expected = numpy_saliency(tape.gradient(selected, images).numpy(), "max_abs")
    with Tf1SavedModel(path) as saved:
        explain = saved.run("explain", {"images": x})
    np.testing.assert_array_equal(explain["target_class"], predicted.numpy())
    np.testing.assert_allclose(explain["logits"], logits.numpy(), atol=1e-5)
    np.testing.assert_allclose(explain["saliency"], expected, atol=1e-5)
    with cpp_load(path) as cpp:
        np.testing.assert_allclose(cpp.run("explain", {"images": x})["saliency"], expected, atol=1e-5)
