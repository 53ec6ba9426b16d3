"""SiLU, hard-SiLU and GELU in the signatures: Keras's values, the analytic derivatives, fewer ops.

`exporter._activations` replaces Keras's backend `silu`, `hard_silu` and `gelu` while the
signatures trace. References: the analytic derivatives in float64, Keras's own functions under
an eager GradientTape, central finite differences, and an eager tape over Keras models.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src.backend.tensorflow import nn as backend_nn

from exporter import ExportConfig, SaliencyExporter
from exporter._activations import closed_form_activation_gradients, gelu, hard_silu, silu
from tests.exporter.helpers import assert_explain_equals_eager_keras

# Away from hard-SiLU's kinks at ±3 (they are pinned separately), normal otherwise.
X = np.random.default_rng(0).normal(scale=3.0, size=(4, 257)).astype(np.float32)
X = np.where(np.abs(np.abs(X) - 3.0) < 1e-3, X + 0.01, X).astype(np.float32)


def _value_and_gradient(function, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    inputs = tf.constant(x)
    cotangent = tf.constant(np.random.default_rng(1).uniform(0.5, 2.0, size=x.shape).astype(x.dtype))
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        out = function(inputs)
        loss = tf.reduce_sum(out * cotangent)
    return out.numpy(), (tape.gradient(loss, inputs) / cotangent).numpy()


def _erf(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf)(x)


def test_silu_value_and_gradient_equal_the_analytic_derivative_and_keras():
    x32 = np.random.default_rng(0).normal(scale=4.0, size=(4, 257)).astype(np.float32)
    value, gradient = _value_and_gradient(silu, x32)
    x = x32.astype(np.float64)
    sigmoid = 1.0 / (1.0 + np.exp(-x))
    np.testing.assert_allclose(value, x * sigmoid, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gradient, sigmoid * (1.0 + x * (1.0 - sigmoid)), rtol=1e-5, atol=1e-6)
    keras_value, keras_gradient = _value_and_gradient(backend_nn.silu, x32)
    np.testing.assert_allclose(value, keras_value, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gradient, keras_gradient, rtol=1e-5, atol=1e-6)


def test_hard_silu_value_and_gradient_equal_the_analytic_derivative_and_keras():
    value, gradient = _value_and_gradient(hard_silu, X)
    x = X.astype(np.float64)
    np.testing.assert_allclose(value, x * np.clip(x + 3.0, 0.0, 6.0) / 6.0, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gradient, np.where(x < -3, 0.0, np.where(x > 3, 1.0, x / 3 + 0.5)), atol=1e-6)
    keras_value, keras_gradient = _value_and_gradient(backend_nn.hard_silu, X)
    np.testing.assert_allclose(value, keras_value, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gradient, keras_gradient, rtol=1e-5, atol=1e-6)


def test_hard_silu_gradient_at_the_kinks_is_keras_one_sided_value():
    kinks = np.array([[-3.0, 3.0, 0.0]], np.float32)
    _, gradient = _value_and_gradient(hard_silu, kinks)
    _, keras_gradient = _value_and_gradient(backend_nn.hard_silu, kinks)
    np.testing.assert_allclose(gradient, keras_gradient, atol=1e-7)
    np.testing.assert_allclose(gradient, [[0.0, 1.0, 0.5]], atol=1e-7)


@pytest.mark.parametrize("approximate", [False, True], ids=["exact", "tanh"])
def test_gelu_value_and_gradient_equal_the_analytic_derivative_and_keras(approximate):
    value, gradient = _value_and_gradient(lambda x: gelu(x, approximate=approximate), X)
    x = X.astype(np.float64)
    if approximate:
        c = math.sqrt(2.0 / math.pi)
        t = np.tanh(c * (x + 0.044715 * x**3))
        expected = 0.5 * x * (1.0 + t)
        derivative = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t**2) * c * (1.0 + 3 * 0.044715 * x**2)
    else:
        cdf = 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))
        expected = x * cdf
        derivative = cdf + x * np.exp(-0.5 * x**2) / math.sqrt(2.0 * math.pi)
    keras_value, keras_gradient = _value_and_gradient(lambda x: backend_nn.gelu(x, approximate=approximate), X)
    np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(value, keras_value, rtol=1e-6, atol=1e-6)
    # In float32 `1 + tanh(·)` cancels in the far negative tail (x ≈ −4: t ≈ −1), in Keras's
    # autodiff gradient as in this one: no farther from the float64 derivative than Keras's.
    ours, theirs = np.abs(gradient - derivative), np.abs(keras_gradient - derivative)
    assert ours.max() <= theirs.max() + 1e-6, (ours.max(), theirs.max())
    np.testing.assert_allclose(gradient, keras_gradient, rtol=1e-5, atol=max(1e-6, 2 * theirs.max()))
    if not approximate:  # an independent check of the float64 derivative itself: central differences
        h = 1e-6
        fd = (x + h) * 0.5 * (1 + _erf((x + h) / math.sqrt(2))) - (x - h) * 0.5 * (1 + _erf((x - h) / math.sqrt(2)))
        np.testing.assert_allclose(fd / (2 * h), derivative, rtol=1e-6, atol=1e-6)


def _gradient_graph_ops(activation: str) -> list[str]:
    layer = keras.layers.Activation(activation)

    @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32)])
    def gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.reduce_sum(layer(x))
        return tape.gradient(y, x)

    return [op.type for op in gradient.get_concrete_function().graph.get_operations()]


def test_the_traced_silu_gradient_computes_the_sigmoid_once():
    assert _gradient_graph_ops("swish").count("Sigmoid") == 2  # tf.nn.silu: forward, and again in the gradient
    with closed_form_activation_gradients():
        assert _gradient_graph_ops("swish").count("Sigmoid") == 1


@pytest.mark.parametrize("activation", ["hard_swish", "gelu"])
def test_the_traced_gradient_has_fewer_ops_than_autodiff(activation):
    autodiff = len(_gradient_graph_ops(activation))
    with closed_form_activation_gradients():
        closed_form = len(_gradient_graph_ops(activation))
    assert closed_form < autodiff


def test_context_restores_keras_functions_even_after_an_error():
    originals = backend_nn.silu, backend_nn.hard_silu, backend_nn.gelu
    with pytest.raises(RuntimeError, match="inside"):
        with closed_form_activation_gradients(), closed_form_activation_gradients():
            assert (backend_nn.silu, backend_nn.hard_silu, backend_nn.gelu) == (silu, hard_silu, gelu)
            raise RuntimeError("inside")
    assert (backend_nn.silu, backend_nn.hard_silu, backend_nn.gelu) == originals


def _swish_cnn() -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """EfficientNet's activation in miniature (swish convolutions, a sigmoid gate): (trunk, inputs)."""
    inputs = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(6, 3, activation="swish")(inputs)
    gate = keras.layers.GlobalAveragePooling2D(keepdims=True)(h)
    gate = keras.layers.Conv2D(6, 1, activation="sigmoid")(gate)
    h = keras.layers.Multiply()([h, gate])
    return keras.layers.Conv2D(8, 3, activation="silu")(h), inputs


def _hard_swish_gelu_cnn() -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """MobileNetV3's and ConvNeXt's activations in miniature: (trunk, inputs)."""
    inputs = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(6, 3, activation="hard_swish")(inputs)
    h = keras.layers.Conv2D(8, 3)(h)
    return keras.layers.Activation("gelu")(h), inputs  # Keras's activation: the exact form


@pytest.mark.integration
@pytest.mark.parametrize("trunk", [_swish_cnn, _hard_swish_gelu_cnn], ids=["swish", "hard_swish_gelu"])
def test_a_model_with_these_activations_exports_and_its_explain_equals_eager_keras(tmp_path, trunk):
    keras.utils.set_random_seed(4)
    h, inputs = trunk()
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inputs, keras.layers.Dense(4)(h))  # logits out
    path = SaliencyExporter(model, ExportConfig(name="act")).write(tmp_path).path
    x = np.random.default_rng(5).random((3, 8, 8, 3), dtype=np.float32)
    assert_explain_equals_eager_keras(model, path, x)
