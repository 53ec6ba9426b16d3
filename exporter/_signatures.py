"""The serving signatures, as `tf.function`s over a `LogitsHead`."""

from __future__ import annotations

import tensorflow as tf

from exporter import _contract as c
from exporter._attribution import (
    chunked_weighted_gradients,
    gradcam,
    integrated_gradients_points,
    resolve_target,
    saliency_map,
    smoothgrad_points,
    vanilla_gradient,
)
from exporter._config import InputConfig, LimitsConfig, MethodsConfig
from exporter._gradcam import GradCamView
from exporter._inputs import ImageLimits, image_limits, to_model_input
from exporter._inputs import images_spec as format_spec
from exporter._limits import SignatureLimits, check_batch
from exporter._logits import LogitsHead

__all__ = ["Signatures", "build_signatures"]


class Signatures(dict):
    """Signature name → `tf.function`, plus the limits their graphs enforce.

    Attributes:
        limits: Each signature's maximum batch (measured on first use, see `exporter._limits`).
        image_limits: The image_bytes guard's limits (None for the other formats).
    """

    limits: SignatureLimits
    image_limits: ImageLimits | None

    def limits_report(self) -> dict[str, object]:
        """The export report's `limits` section: per-signature maxima and costs, image limits."""
        report = self.limits.report()
        report["input"] = self.image_limits.report() if self.image_limits is not None else None
        return report


def _finite_float(images: tf.Tensor) -> tf.Tensor:
    # In-graph, so stock TF Serving rejects NaN/Inf with INVALID_ARGUMENT too.
    return tf.debugging.check_numerics(images, "images must be finite (received NaN or Inf)")


def _prediction(head: LogitsHead, logits: tf.Tensor) -> dict[str, tf.Tensor]:
    return {
        c.LOGITS: tf.identity(logits),
        c.PROBABILITIES: head.probabilities_fn(logits),
        c.PREDICTED_CLASS: tf.argmax(logits, axis=-1, output_type=tf.int32),
    }


def _target_resolver(target_class: tf.Tensor, num_classes: int):
    """logits → target class [B], where −1 means the predicted class.

    Called inside the gradient tape (see `vanilla_gradient`), so resolving the predicted
    class costs no second forward pass.
    """

    def target_fn(logits: tf.Tensor) -> tf.Tensor:
        predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
        return resolve_target(target_class, predicted, num_classes)

    return target_fn


def _explanation(
    head: LogitsHead, logits: tf.Tensor, target: tf.Tensor, saliency: tf.Tensor
) -> dict[str, tf.Tensor]:
    outputs = _prediction(head, logits)
    outputs[c.TARGET_CLASS] = target
    outputs[c.SALIENCY] = saliency
    return outputs


def build_signatures(
    head: LogitsHead,
    input_shape: tuple[int, int, int],
    reduction: str,
    methods: MethodsConfig | None = None,
    gradcam_view: GradCamView | None = None,
    input_config: InputConfig | None = None,
    limits: LimitsConfig | None = None,
) -> Signatures:
    """Builds `serving_default`, `explain` and the other enabled explanation signatures.

    Args:
        head: Where the logits come from.
        input_shape: (H, W, C) of one image.
        reduction: Channel reduction of the saliency map.
        methods: Extra methods and their parameters; only `explain` by default.
        gradcam_view: The (activations, logits) view; required when `gradcam` is enabled.
        input_config: The format of `images` (float32 by default); every signature
            converts it to the model's float input first, and explains that.
        limits: `[limits]`: each signature refuses a batch over its maximum first.

    Returns:
        Signature name → `tf.function` with a fixed input signature (batch dynamic).
    """
    input_config = input_config or InputConfig()
    images_spec = format_spec(input_config, input_shape)
    target_spec = tf.TensorSpec([None], tf.int32, name=c.TARGET_CLASS)

    def specs_at(name: str, batch: int) -> list[tf.TensorSpec]:
        images_at = tf.TensorSpec([batch, *images_spec.shape[1:]], images_spec.dtype, name=c.IMAGES)
        if name == c.SERVING_DEFAULT:
            return [images_at]
        return [images_at, tf.TensorSpec([batch], tf.int32, name=c.TARGET_CLASS)]

    signature_limits = SignatureLimits(limits or LimitsConfig(), specs_at)

    def _finite(images: tf.Tensor, name: str) -> tf.Tensor:
        # The batch first: an oversize request is refused before anything is decoded or run.
        maximum = signature_limits.maximum(name)
        if maximum is not None:
            images = check_batch(images, name, maximum)
        return _finite_float(to_model_input(images, input_config, input_shape))

    num_classes = head.num_classes

    @tf.function(input_signature=[images_spec], autograph=False)
    def serving_default(images: tf.Tensor) -> dict[str, tf.Tensor]:
        return _prediction(head, head.logits_fn(_finite(images, c.SERVING_DEFAULT)))

    @tf.function(input_signature=[images_spec, target_spec], autograph=False)
    def explain(images: tf.Tensor, target_class: tf.Tensor) -> dict[str, tf.Tensor]:
        gradient, logits, target = vanilla_gradient(
            head.logits_fn, _finite(images, c.EXPLAIN), _target_resolver(target_class, num_classes)
        )
        return _explanation(head, logits, target, saliency_map(gradient, reduction))

    functions = {c.SERVING_DEFAULT: serving_default, c.EXPLAIN: explain}
    methods = methods or MethodsConfig()

    def clean_pass(images: tf.Tensor, target_class: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """Logits of the unperturbed images and the resolved target (one forward pass)."""
        logits = head.logits_fn(images)
        outputs = _prediction(head, logits)
        target = resolve_target(target_class, outputs[c.PREDICTED_CLASS], num_classes)
        outputs[c.TARGET_CLASS] = target
        return logits, outputs

    if "smoothgrad" in methods.enabled:
        low, high = methods.smoothgrad_input_range
        sigma = methods.smoothgrad_noise * (high - low)

        @tf.function(input_signature=[images_spec, target_spec], autograph=False)
        def explain_smoothgrad(images: tf.Tensor, target_class: tf.Tensor) -> dict[str, tf.Tensor]:
            images = _finite(images, c.EXPLAIN_SMOOTHGRAD)
            _, outputs = clean_pass(images, target_class)
            gradient = chunked_weighted_gradients(
                head.logits_fn,
                smoothgrad_points(images, methods.smoothgrad_samples, sigma, methods.smoothgrad_seed),
                images,
                outputs[c.TARGET_CLASS],
                methods.smoothgrad_samples,
                methods.internal_batch,
            )
            outputs[c.SALIENCY] = saliency_map(gradient, reduction)
            return outputs

        functions[c.EXPLAIN_SMOOTHGRAD] = explain_smoothgrad

    if "integrated_gradients" in methods.enabled:
        steps = methods.ig_steps

        @tf.function(input_signature=[images_spec, target_spec], autograph=False)
        def explain_integrated_gradients(images: tf.Tensor, target_class: tf.Tensor) -> dict[str, tf.Tensor]:
            images = _finite(images, c.EXPLAIN_INTEGRATED_GRADIENTS)
            logits, outputs = clean_pass(images, target_class)
            target = outputs[c.TARGET_CLASS]
            baseline = tf.fill(tf.shape(images), tf.constant(methods.ig_baseline, tf.float32))
            mean_gradient = chunked_weighted_gradients(
                head.logits_fn,
                integrated_gradients_points(images, baseline, steps),
                images,
                target,
                steps + 1,
                methods.internal_batch,
            )
            attributions = (images - baseline) * mean_gradient
            # One baseline image serves the whole batch: it is the same constant for all.
            baseline_logits = head.logits_fn(baseline[:1])[0]
            delta = tf.gather(logits, target, axis=1, batch_dims=1) - tf.gather(baseline_logits, target)
            total = tf.reduce_sum(attributions, axis=[1, 2, 3])
            outputs[c.ATTRIBUTIONS] = attributions
            outputs[c.APPROXIMATION_ERROR] = tf.math.divide_no_nan(tf.abs(total - delta), tf.abs(delta))
            outputs[c.SALIENCY] = saliency_map(attributions, reduction)
            return outputs

        functions[c.EXPLAIN_INTEGRATED_GRADIENTS] = explain_integrated_gradients

    if "gradient_x_input" in methods.enabled:

        @tf.function(input_signature=[images_spec, target_spec], autograph=False)
        def explain_gradient_x_input(images: tf.Tensor, target_class: tf.Tensor) -> dict[str, tf.Tensor]:
            # One forward and one backward pass, like `explain`.
            images = _finite(images, c.EXPLAIN_GRADIENT_X_INPUT)
            gradient, logits, target = vanilla_gradient(
                head.logits_fn, images, _target_resolver(target_class, num_classes)
            )
            return _explanation(head, logits, target, saliency_map(gradient * images, reduction))

        functions[c.EXPLAIN_GRADIENT_X_INPUT] = explain_gradient_x_input

    if "gradcam" in methods.enabled:
        if gradcam_view is None:
            raise ValueError("The gradcam method needs a gradcam_view (see exporter._gradcam).")

        @tf.function(input_signature=[images_spec, target_spec], autograph=False)
        def explain_gradcam(images: tf.Tensor, target_class: tf.Tensor) -> dict[str, tf.Tensor]:
            saliency, logits, target = gradcam(
                gradcam_view.activations_and_logits,
                _finite(images, c.EXPLAIN_GRADCAM),
                _target_resolver(target_class, num_classes),
            )
            return _explanation(head, logits, target, saliency)

        functions[c.EXPLAIN_GRADCAM] = explain_gradcam

    signatures = Signatures(functions)
    for name, function in functions.items():
        signature_limits.register(name, function.python_function)
    signatures.limits = signature_limits
    signatures.image_limits = image_limits(input_config, input_shape)
    return signatures
