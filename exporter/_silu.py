"""Keras's SiLU (swish) with a gradient that reuses the forward sigmoid, while signatures trace.

Keras 3's TensorFlow backend computes `silu` as `tf.nn.silu`, whose gradient recomputes
`sigmoid(x)` (TF's `nn_impl.swish` keeps only `x`, to save memory in training). In an
`explain` signature that is one more sigmoid over every SiLU activation: EfficientNetB0's are
most of its extra cost after the convolutions (step stats of `explain`, 64×64, batch 32,
C++ loader: Sigmoid 22.8 ms of 184). Here the forward keeps `s = sigmoid(x)` and `y = x·s`,
and the gradient is `dy · s · (1 + x − y)`, the same derivative
(d/dx x·σ(x) = σ + x·σ·(1 − σ) = σ·(1 + x − x·σ)) with no second sigmoid.

`silu_with_shared_sigmoid()` swaps the backend's `silu` while it is active;
`exporter._signatures` enters it in every signature's body, which runs only while tracing. In
`serving_default`, where nothing takes the gradient, oneDNN's remapper still fuses x·σ(x) into
one swish kernel. Outside the context (the eager references verification compares the
export with) Keras computes as it always does.
"""

from __future__ import annotations

import contextlib
from typing import Any

import tensorflow as tf

from exporter._backend_swap import backend_function_replaced

__all__ = ["silu", "silu_with_shared_sigmoid"]


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


def silu_with_shared_sigmoid() -> contextlib.AbstractContextManager[None]:
    """While active, Keras's SiLU/swish activations go through `silu`; re-entrant."""
    return backend_function_replaced("silu", silu)
