"""SiLU, hard-SiLU and GELU with cheaper gradients, while the signatures trace.

Autodiff of Keras 3's TensorFlow-backend forms builds the derivative op by op:

- `silu(x)`: `tf.nn.silu`, whose gradient recomputes `sigmoid(x)` (TF's `nn_impl.swish` keeps
  only `x`, to save training memory). EfficientNet's swish activations paid a second sigmoid
  in `explain` (step stats, 64×64, batch 32, C++ loader: Sigmoid 22.8 ms of 184);
- `hard_silu(x) = x · relu6(x + 3) / 6` (MobileNetV3's hard-swish): two `Mul`s, a `RealDiv`,
  `Relu6Grad` and an `AddN` per activation;
- `gelu(x)`: `tf.nn.gelu`, exact `0.5·x·erfc(−x/√2)` (ConvNeXt's) or the tanh form, whose
  gradients differentiate `erfc`/`tanh` and the products around them, keeping neither.

Here each forward keeps what its derivative needs and the gradient is one expression:

- SiLU: the forward keeps `s = sigmoid(x)` and `y = x·s`; `d/dx = s·(1 + x − y)`
  (= σ + x·σ·(1 − σ)), no second sigmoid;
- hard-SiLU: `d/dx = 0` for `x ≤ −3`, `1` for `x ≥ 3`, `x/3 + 1/2` between (TF's
  `Relu6Grad` takes the kinks' one-sided value the same way: 0 at x = −3, and 1 at x = 3);
- exact GELU: `0.5·erfc(−x/√2) + x·φ(x)`, φ the standard normal density;
- tanh GELU: with `t = tanh(√(2/π)·(x + 0.044715·x³))`,
  `0.5·(1 + t) + 0.5·x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²)`.

`closed_form_activation_gradients()` swaps the backend's `silu`, `hard_silu` and `gelu` while
it is active; `exporter._signatures` enters it in every signature's body, which runs only
while tracing. In `serving_default`, where nothing takes the gradient, oneDNN's remapper still
fuses x·σ(x) into one swish kernel. Outside it (the eager references verification compares
the export with) Keras computes as it always does.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import tensorflow as tf

from exporter._backend_swap import backend_function_replaced

__all__ = ["closed_form_activation_gradients", "gelu", "hard_silu", "silu"]

_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_TANH_CUBIC = 0.044715


@tf.custom_gradient
def _silu(x: tf.Tensor) -> Any:
    s = tf.sigmoid(x)
    y = x * s

    def grad(dy: tf.Tensor) -> tf.Tensor:
        return dy * s * (1.0 + x - y)

    return y, grad


def silu(x: Any) -> Any:
    """`x · sigmoid(x)`, as Keras's backend `silu`; its gradient reuses the sigmoid."""
    return _silu(tf.convert_to_tensor(x))


@tf.custom_gradient
def _hard_silu(x: tf.Tensor) -> Any:
    three = tf.constant(3.0, x.dtype)
    y = x * (tf.nn.relu6(x + three) / tf.constant(6.0, x.dtype))

    def grad(dy: tf.Tensor) -> tf.Tensor:
        inner = x / three + tf.constant(0.5, x.dtype)
        slope = tf.where(x <= -three, tf.zeros_like(x), tf.where(x >= three, tf.ones_like(x), inner))
        return dy * slope

    return y, grad


def hard_silu(x: Any) -> Any:
    """`x · relu6(x + 3) / 6`, as Keras's backend `hard_silu`; a closed-form gradient."""
    return _hard_silu(tf.convert_to_tensor(x))


@tf.custom_gradient
def _gelu_exact(x: tf.Tensor) -> Any:
    half = tf.constant(0.5, x.dtype)
    cdf2 = tf.math.erfc(x * tf.constant(-_SQRT_HALF, x.dtype))  # 2·Φ(x)
    y = half * x * cdf2

    def grad(dy: tf.Tensor) -> tf.Tensor:
        density = tf.exp(tf.square(x) * -half) * tf.constant(_INV_SQRT_2PI, x.dtype)
        return dy * (half * cdf2 + x * density)

    return y, grad


@tf.custom_gradient
def _gelu_tanh(x: tf.Tensor) -> Any:
    half = tf.constant(0.5, x.dtype)
    cubic = tf.constant(_TANH_CUBIC, x.dtype)
    scale = tf.constant(_SQRT_2_OVER_PI, x.dtype)
    t = tf.tanh(scale * (x + cubic * x * x * x))
    y = half * x * (1.0 + t)

    def grad(dy: tf.Tensor) -> tf.Tensor:
        inner = scale * (1.0 + tf.constant(3.0 * _TANH_CUBIC, x.dtype) * tf.square(x))
        return dy * (half * (1.0 + t) + half * x * (1.0 - tf.square(t)) * inner)

    return y, grad


def gelu(x: Any, approximate: bool = True) -> Any:
    """Keras's backend `gelu` (same default, `approximate=True`); a closed-form gradient."""
    x = tf.convert_to_tensor(x)
    return _gelu_tanh(x) if approximate else _gelu_exact(x)


@contextlib.contextmanager
def closed_form_activation_gradients() -> Iterator[None]:
    """While active, Keras's SiLU, hard-SiLU and GELU go through `silu`, `hard_silu` and `gelu`;
    re-entrant."""
    with (
        backend_function_replaced("silu", silu),
        backend_function_replaced("hard_silu", hard_silu),
        backend_function_replaced("gelu", gelu),
    ):
        yield
