"""SiLU (swish) in the signatures: the same values and input gradient as Keras's, one sigmoid.

`exporter._silu` replaces Keras's backend `silu` (`tf.nn.silu`, whose gradient recomputes the
sigmoid) while the signatures trace. References: the analytic derivative in float64, Keras's
own `silu` under an eager GradientTape, and an eager tape over the Keras model.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src.backend.tensorflow import nn as backend_nn

from exporter import ExportConfig, SaliencyExporter
from exporter._silu import silu, silu_with_shared_sigmoid
from tests.exporter.helpers import assert_explain_equals_eager_keras

X = np.random.default_rng(0).normal(scale=4.0, size=(4, 257)).astype(np.float32)


def _value_and_gradient(function, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    inputs = tf.constant(x)
    cotangent = tf.constant(np.random.default_rng(1).normal(size=x.shape).astype(x.dtype))
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        out = function(inputs)
        loss = tf.reduce_sum(out * cotangent)
    return out.numpy(), (tape.gradient(loss, inputs) / cotangent).numpy()


def test_silu_value_and_gradient_equal_the_analytic_derivative_and_keras():
    value, gradient = _value_and_gradient(silu, X)
    x = X.astype(np.float64)
    sigmoid = 1.0 / (1.0 + np.exp(-x))
    np.testing.assert_allclose(value, x * sigmoid, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gradient, sigmoid * (1.0 + x * (1.0 - sigmoid)), rtol=1e-5, atol=1e-6)
    keras_value, keras_gradient = _value_and_gradient(backend_nn.silu, X)
    np.testing.assert_allclose(value, keras_value, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gradient, keras_gradient, rtol=1e-5, atol=1e-6)


def _sigmoids_in_gradient_graph() -> int:
    layer = keras.layers.Activation("swish")

    @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32)])
    def gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.reduce_sum(layer(x))
        return tape.gradient(y, x)

    return sum(op.type == "Sigmoid" for op in gradient.get_concrete_function().graph.get_operations())


def test_the_traced_gradient_computes_the_sigmoid_once():
    assert _sigmoids_in_gradient_graph() == 2  # Keras's tf.nn.silu: forward, and again in the gradient
    with silu_with_shared_sigmoid():
        assert _sigmoids_in_gradient_graph() == 1


def test_context_restores_keras_silu_even_after_an_error():
    keras_silu = backend_nn.silu
    with pytest.raises(RuntimeError, match="inside"):
        with silu_with_shared_sigmoid(), silu_with_shared_sigmoid():
            assert backend_nn.silu is silu
            raise RuntimeError("inside")
    assert backend_nn.silu is keras_silu


def _swish_cnn() -> keras.Model:
    """EfficientNet's activation in miniature: swish convolutions and a sigmoid gate."""
    keras.utils.set_random_seed(4)
    inputs = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(6, 3, activation="swish")(inputs)
    gate = keras.layers.GlobalAveragePooling2D(keepdims=True)(h)
    gate = keras.layers.Conv2D(6, 1, activation="sigmoid")(gate)
    h = keras.layers.Multiply()([h, gate])
    h = keras.layers.Conv2D(8, 3, activation="silu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(4)(h))  # logits out


@pytest.mark.integration
def test_a_swish_model_exports_and_its_explain_equals_eager_keras(tmp_path):
    model = _swish_cnn()
    path = SaliencyExporter(model, ExportConfig(name="swish")).write(tmp_path).path
    x = np.random.default_rng(5).random((3, 8, 8, 3), dtype=np.float32)
    assert_explain_equals_eager_keras(model, path, x)
