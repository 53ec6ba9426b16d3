"""Keras's grouped convolutions without XLA, while the exporter traces its signatures.

Keras 3's TensorFlow backend (`keras/src/backend/tensorflow/nn.py`, `conv()`) runs every
grouped convolution (input channels != `kernel.shape[-2]`) inside `tf.function(
jit_compile=True)`, because TF has no grouped `Conv2D` kernel on CPU. Traced into a signature,
that is a function call with `_XlaMustCompile` set, and stock TF Serving, which runs with
`--xla_cpu_compilation_enabled=false` by default, fails it with INTERNAL "XLA compilation
disabled" (`model_server._xla` says where). ConvNeXt's 7×7 depthwise layers are
`Conv2D(groups=C)`, so every ConvNeXt export would fail, and XLA's CPU convolution was most of
its predict time anyway (docs/benchmarks.md).

`xla_free_grouped_convolutions()` replaces the backend's `conv` with exact non-XLA equivalents
while it is active; `exporter._signatures` enters it in every signature's body, which runs only
while the signature traces. Outside it (the eager references verification compares the export
with) Keras computes as it always does.

- groups == input channels (one input channel per group, ConvNeXt's case): the kernel
  (…, 1, C·M) is reshaped to (…, C, M) and run by Keras's own `depthwise_conv`
  (`DepthwiseConv2dNative`). Grouped output channel g·M + m reads input channel g, and the
  depthwise output channel c·M + m reads input channel c: the same order.
- other groups: the input channels and the kernel's output channels are split into the
  groups, each group is an ordinary (non-grouped) Keras convolution, and the results are
  concatenated in group order.

What cannot be rewritten (unknown channels; Keras's channels-first 3-D convolutions, which
need XLA for a reason other than groups) is left to Keras, and the export's XLA check
(`exporter._verify.check_xla_free`) refuses the result.
"""

from __future__ import annotations

import contextlib
from typing import Any

import tensorflow as tf
from keras.src.backend.config import standardize_data_format
from keras.src.backend.tensorflow import nn as _backend_nn

from exporter._backend_swap import backend_function_replaced

__all__ = ["grouped_conv", "xla_free_grouped_convolutions"]

#: Keras's own `conv`, captured at import: what runs outside the context, and per group inside.
_KERAS_CONV = _backend_nn.conv


def grouped_conv(
    inputs: Any,
    kernel: Any,
    strides: Any = 1,
    padding: str = "valid",
    data_format: str | None = None,
    dilation_rate: Any = 1,
) -> Any:
    """Keras's `backend.nn.conv`, with grouped convolutions computed without XLA.

    Same arguments and result as `keras.src.backend.tensorflow.nn.conv`; a convolution that
    is not grouped goes to it unchanged.
    """
    data_format = standardize_data_format(data_format)
    channel_axis = -1 if data_format == "channels_last" else 1
    channels, per_group = inputs.shape[channel_axis], kernel.shape[-2]
    keras_needs_xla_anyway = data_format == "channels_first" and len(inputs.shape) == 5
    if channels is None or per_group is None or channels == per_group or keras_needs_xla_anyway:
        return _KERAS_CONV(inputs, kernel, strides, padding, data_format, dilation_rate)
    inputs, kernel = tf.convert_to_tensor(inputs), tf.convert_to_tensor(kernel)
    groups, filters = channels // per_group, kernel.shape[-1]
    if per_group == 1 and inputs.shape.rank in (3, 4):
        depthwise = tf.reshape(kernel, [*kernel.shape[:-2], channels, filters // channels])
        # Keras's depthwise_conv concatenates tuples; Conv layers pass lists.
        strides, dilation_rate = (tuple(v) if isinstance(v, list) else v for v in (strides, dilation_rate))
        return _backend_nn.depthwise_conv(inputs, depthwise, strides, padding, data_format, dilation_rate)
    parts = zip(
        tf.split(inputs, groups, axis=channel_axis), tf.split(kernel, groups, axis=-1), strict=True
    )
    return tf.concat(
        [_KERAS_CONV(x, k, strides, padding, data_format, dilation_rate) for x, k in parts],
        axis=channel_axis,
    )


def xla_free_grouped_convolutions() -> contextlib.AbstractContextManager[None]:
    """While active, Keras layers' convolutions go through `grouped_conv` (no XLA); re-entrant."""
    return backend_function_replaced("conv", grouped_conv)
