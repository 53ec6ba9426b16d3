"""Several classes per call: a `[B, K]` `target_class` explained by one run on B·K rows.

Every explanation signature takes `target_class` as `[B]` (one class per image) or `[B, K]`
(K classes per image). The rank-2 case is generic: each image (and each per-request input)
is repeated K times along axis 0, the targets are flattened, the method's `explain` runs
once on the B·K rows, the prediction outputs are taken from every K-th row and the
per-target outputs are reshaped to the target's own shape, `[B, K, …]`. A rank-1 request
goes through the same ops with K = 1: the same B rows, so the one-class answer and shapes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow as tf

from exporter._attribution import assert_target_length
from serving_client import contract as c

__all__ = ["class_targets", "explain_per_class"]

#: Outputs that describe the image, not the explained class: one row per image.
PER_IMAGE_OUTPUTS = c.PREDICT_OUTPUTS

#: (images [R,H,W,C], flat target [R], per-request values [R,…]) → outputs with R rows.
RowsFn = Callable[[tf.Tensor, tf.Tensor, Sequence[tf.Tensor]], dict[str, tf.Tensor]]


def class_targets(target_class: tf.Tensor, batch: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """In the graph: `target_class` checked and broadcast to the batch, and K.

    Args:
        target_class: int32 of rank 1 (`[1]` or `[B]`) or rank 2 (`[1, K]` or `[B, K]`).
        batch: int32 scalar B.

    Returns:
        (target int32 `[B]` or `[B, K]`, K int32 scalar; 1 for rank 1).

    Raises (at run time, InvalidArgumentError → INVALID_ARGUMENT):
        If the rank is not 1 or 2, the first dimension neither 1 nor B, or K is 0.
    """
    rank = tf.rank(target_class)
    rank_ok = tf.debugging.Assert(
        tf.logical_or(tf.equal(rank, 1), tf.equal(rank, 2)),
        ["target_class must be [batch] (one class per image) or [batch, K] (K classes per image); "
         "received rank", rank],
    )
    with tf.control_dependencies([rank_ok]):
        shape = tf.shape(target_class)
        length = shape[0]
        classes = tf.reduce_prod(shape[1:])  # 1 for rank 1
        checks = [
            assert_target_length(length, batch),
            tf.debugging.Assert(
                classes >= 1, ["target_class [batch, K] needs K >= 1 classes; received shape", shape]
            ),
        ]
    with tf.control_dependencies(checks):
        target = tf.broadcast_to(tf.identity(target_class), tf.concat([[batch], shape[1:]], axis=0))
    return target, classes


def explain_per_class(
    run: RowsFn, images: tf.Tensor, target: tf.Tensor, classes: tf.Tensor, values: Sequence[tf.Tensor]
) -> dict[str, tf.Tensor]:
    """The method's outputs for every (image, class) pair, from one run on B·K rows.

    Args:
        run: The method's computation on rows (see `RowsFn`).
        images: float32 [B,H,W,C], the model's input.
        target: int32 [B] or [B,K] (`class_targets`).
        classes: int32 scalar K.
        values: The per-request inputs, each already broadcast to [B,…].

    Returns:
        `logits`, `probabilities`, `predicted_class` with B rows; every other output with
        the target's shape in front of its per-row shape (`saliency` [B,K,H,W]).
    """
    rows = run(
        tf.repeat(images, classes, axis=0),
        tf.reshape(target, [-1]),
        [tf.repeat(value, classes, axis=0) for value in values],
    )
    first_rows = tf.range(tf.shape(images)[0]) * classes
    outputs = {}
    for alias, tensor in rows.items():
        if alias in PER_IMAGE_OUTPUTS:
            outputs[alias] = tf.gather(tensor, first_rows)
        else:
            outputs[alias] = tf.reshape(tensor, tf.concat([tf.shape(target), tf.shape(tensor)[1:]], axis=0))
    return outputs
