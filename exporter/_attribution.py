"""The attribution math, as TensorFlow graph ops (no Python control flow on tensors).

Each method turns (logits_fn, images, target) into a raw attribution [B,H,W,C]; the
shared post-processing reduces channels and min-max normalizes per example.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

__all__ = [
    "normalize_per_example",
    "reduce_channels",
    "resolve_target",
    "saliency_map",
    "vanilla_gradient",
]


def reduce_channels(attribution: tf.Tensor, reduction: str) -> tf.Tensor:
    """[B,H,W,C] → [B,H,W] by `max_abs`, `max` (signed), `sum_abs` or `l2`."""
    if reduction == "max_abs":
        return tf.reduce_max(tf.abs(attribution), axis=-1)
    if reduction == "max":
        return tf.reduce_max(attribution, axis=-1)
    if reduction == "sum_abs":
        return tf.reduce_sum(tf.abs(attribution), axis=-1)
    if reduction == "l2":
        return tf.sqrt(tf.reduce_sum(tf.square(attribution), axis=-1))
    raise ValueError(f"Unknown reduction {reduction!r}; expected max_abs, max, sum_abs or l2.")


def normalize_per_example(maps: tf.Tensor) -> tf.Tensor:
    """Min-max normalizes each [H,W] map to [0, 1]; a constant map becomes all zeros."""
    low = tf.reduce_min(maps, axis=[1, 2], keepdims=True)
    high = tf.reduce_max(maps, axis=[1, 2], keepdims=True)
    # divide_no_nan: a constant (e.g. all-zero) gradient gives zeros, never NaN.
    return tf.clip_by_value(tf.math.divide_no_nan(maps - low, high - low), 0.0, 1.0)


def saliency_map(attribution: tf.Tensor, reduction: str) -> tf.Tensor:
    """Raw attribution [B,H,W,C] → normalized saliency [B,H,W] in [0, 1]."""
    return normalize_per_example(reduce_channels(attribution, reduction))


def resolve_target(
    target_class: tf.Tensor, predicted_class: tf.Tensor, num_classes: int
) -> tf.Tensor:
    """Broadcasts and validates `target_class`; −1 means the predicted class.

    Args:
        target_class: int32 [B] or [1]; each value in [-1, num_classes).
        predicted_class: int32 [B].
        num_classes: K.

    Returns:
        int32 [B], every value in [0, K).

    Raises (at run time, as InvalidArgumentError → gRPC INVALID_ARGUMENT):
        If the length is neither 1 nor B, or a value is out of range.
    """
    batch = tf.shape(predicted_class)[0]
    length = tf.shape(target_class)[0]
    checks = [
        tf.debugging.Assert(
            tf.logical_or(tf.equal(length, 1), tf.equal(length, batch)),
            ["target_class must have length 1 or the batch size; received length", length,
             "for batch size", batch],
        ),
        tf.debugging.Assert(
            tf.reduce_all(tf.logical_and(target_class >= -1, target_class < num_classes)),
            [f"target_class out of range: expected -1 (the predicted class) or 0..{num_classes - 1}; "
             "received", target_class],
            summarize=16,
        ),
    ]
    with tf.control_dependencies(checks):
        target = tf.broadcast_to(tf.identity(target_class), [batch])
    return tf.where(target < 0, predicted_class, target)


def vanilla_gradient(
    logits_fn: Callable[[tf.Tensor], tf.Tensor],
    images: tf.Tensor,
    target_fn: Callable[[tf.Tensor], tf.Tensor],
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Gradient of logit[target] w.r.t. the input (Simonyan et al. 2013), in one pass.

    Args:
        logits_fn: images → logits [B,K].
        images: [B,H,W,C].
        target_fn: logits → target class int32 [B] (so "the predicted class" costs no
            second forward pass).

    Returns:
        (gradient [B,H,W,C], logits [B,K], target [B]). Examples are independent
        (inference mode), so the gradient of the batch sum is each example's own.
    """
    with tf.GradientTape() as tape:
        tape.watch(images)
        logits = logits_fn(images)
        target = tf.stop_gradient(target_fn(logits))
        selected = tf.gather(logits, target, axis=1, batch_dims=1)
    return tape.gradient(selected, images), logits, target
