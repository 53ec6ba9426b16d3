"""The serving signatures, as `tf.function`s over a `LogitsHead`."""

from __future__ import annotations

import tensorflow as tf

from exporter import _contract as c
from exporter._attribution import resolve_target, saliency_map, vanilla_gradient
from exporter._logits import LogitsHead

__all__ = ["build_signatures"]


def _finite(images: tf.Tensor) -> tf.Tensor:
    # In-graph, so stock TF Serving rejects NaN/Inf with INVALID_ARGUMENT too.
    return tf.debugging.check_numerics(images, "images must be finite (received NaN or Inf)")


def _prediction(head: LogitsHead, logits: tf.Tensor) -> dict[str, tf.Tensor]:
    return {
        c.LOGITS: tf.identity(logits),
        c.PROBABILITIES: head.probabilities_fn(logits),
        c.PREDICTED_CLASS: tf.argmax(logits, axis=-1, output_type=tf.int32),
    }


def build_signatures(
    head: LogitsHead, input_shape: tuple[int, int, int], reduction: str
) -> dict[str, tf.types.experimental.PolymorphicFunction]:
    """Builds `serving_default` and `explain`.

    Args:
        head: Where the logits come from.
        input_shape: (H, W, C) of one image.
        reduction: Channel reduction of the saliency map.

    Returns:
        Signature name → `tf.function` with a fixed input signature (batch dynamic).
    """
    images_spec = tf.TensorSpec([None, *input_shape], tf.float32, name=c.IMAGES)
    target_spec = tf.TensorSpec([None], tf.int32, name=c.TARGET_CLASS)
    num_classes = head.num_classes

    @tf.function(input_signature=[images_spec], autograph=False)
    def serving_default(images: tf.Tensor) -> dict[str, tf.Tensor]:
        return _prediction(head, head.logits_fn(_finite(images)))

    @tf.function(input_signature=[images_spec, target_spec], autograph=False)
    def explain(images: tf.Tensor, target_class: tf.Tensor) -> dict[str, tf.Tensor]:
        def target_fn(logits: tf.Tensor) -> tf.Tensor:
            predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
            return resolve_target(target_class, predicted, num_classes)

        gradient, logits, target = vanilla_gradient(head.logits_fn, _finite(images), target_fn)
        outputs = _prediction(head, logits)
        outputs[c.TARGET_CLASS] = target
        outputs[c.SALIENCY] = saliency_map(gradient, reduction)
        return outputs

    return {c.SERVING_DEFAULT: serving_default, c.EXPLAIN: explain}
