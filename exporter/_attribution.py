"""The attribution math, as TensorFlow graph ops (no Python control flow on tensors).

Each method turns (logits_fn, images, target) into a raw attribution [B,H,W,C]; the
shared post-processing reduces channels and min-max normalizes per example.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

__all__ = [
    "assert_target_length",
    "chunked_gradient_sum",
    "chunked_weighted_gradients",
    "even_chunk",
    "gradcam",
    "gradient_at",
    "integrated_gradients_points",
    "normalize_per_example",
    "reduce_channels",
    "resolve_target",
    "saliency_map",
    "smoothgrad_points",
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


def assert_target_length(length: tf.Tensor, batch: tf.Tensor) -> tf.Operation:
    """In the graph: `target_class`'s first dimension is 1 (broadcast) or the batch size B."""
    return tf.debugging.Assert(
        tf.logical_or(tf.equal(length, 1), tf.equal(length, batch)),
        ["target_class must have length 1 or the batch size; received length", length, "for batch size", batch],
    )


def resolve_target(target_class: tf.Tensor, logits: tf.Tensor, num_classes: int) -> tf.Tensor:
    """Broadcasts and validates `target_class`; −j means the j-th most probable class.

    −1 is the predicted class (the argmax), −2 the runner-up, …, −K the least probable:
    ranked from the logits the method already computed, so no second forward pass.

    Args:
        target_class: int32 [B] or [1]; each value in [−num_classes, num_classes).
        logits: float32 [B,K].
        num_classes: K.

    Returns:
        int32 [B], every value in [0, K).

    Raises (at run time, as InvalidArgumentError → gRPC INVALID_ARGUMENT):
        If the length is neither 1 nor B, or a value is out of range.
    """
    batch = tf.shape(logits)[0]
    checks = [
        assert_target_length(tf.shape(target_class)[0], batch),
        tf.debugging.Assert(
            tf.reduce_all(tf.logical_and(target_class >= -num_classes, target_class < num_classes)),
            [f"target_class out of range: expected a class 0..{num_classes - 1}, or -1 (the predicted "
             f"class) down to -{num_classes} (-j: the j-th most probable class); received", target_class],
            summarize=16,
        ),
    ]
    with tf.control_dependencies(checks):
        target = tf.broadcast_to(tf.identity(target_class), [batch])
    predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
    # top_k orders ties by index, as argmax does, so -1 and rank 1 agree.
    ranked = tf.math.top_k(logits, k=num_classes, sorted=True).indices
    rank = tf.clip_by_value(-target - 1, 0, num_classes - 1)
    by_rank = tf.gather(ranked, rank, axis=1, batch_dims=1)
    return tf.where(target >= 0, target, tf.where(tf.equal(target, -1), predicted, by_rank))


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


def gradient_at(
    logits_fn: Callable[[tf.Tensor], tf.Tensor], images: tf.Tensor, target: tf.Tensor
) -> tf.Tensor:
    """d logit[target] / d images for a fixed target int32 [B]; returns [B,H,W,C]."""
    with tf.GradientTape() as tape:
        tape.watch(images)
        selected = tf.gather(logits_fn(images), target, axis=1, batch_dims=1)
    return tape.gradient(selected, images)


def gradcam(
    activations_and_logits: Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]],
    images: tf.Tensor,
    target_fn: Callable[[tf.Tensor], tf.Tensor],
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Grad-CAM (Selvaraju et al. 2017), upsampled to the input and normalized.

    w_k = mean over (i, j) of d logit[target] / d A_k[i, j]; map = ReLU(Σ_k w_k A_k),
    resized bilinearly to the input's H×W, then min-max normalized per example.

    Args:
        activations_and_logits: images → (activations [B,h,w,k], logits [B,K]).
        images: [B,H,W,C].
        target_fn: logits → target class int32 [B].

    Returns:
        (saliency [B,H,W] in [0, 1], logits [B,K], target [B]).

    Raises:
        ValueError: At trace time, if the logits do not depend on the activations.
    """
    with tf.GradientTape() as tape:
        activations, logits = activations_and_logits(images)
        tape.watch(activations)
        target = tf.stop_gradient(target_fn(logits))
        selected = tf.gather(logits, target, axis=1, batch_dims=1)
    gradient = tape.gradient(selected, activations)
    if gradient is None:
        raise ValueError("The logits do not depend on the Grad-CAM layer's activations.")
    weights = tf.reduce_mean(gradient, axis=[1, 2], keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * activations, axis=-1, keepdims=True))
    upsampled = tf.image.resize(cam, tf.shape(images)[1:3], method="bilinear")[..., 0]
    return normalize_per_example(upsampled), logits, target


# A point function maps copy indices int32 [k] to (inputs [k,B,H,W,C], weights float32 [k]).
PointsFn = Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]]


def chunked_weighted_gradients(
    logits_fn: Callable[[tf.Tensor], tf.Tensor],
    points_fn: PointsFn,
    images: tf.Tensor,
    target: tf.Tensor,
    count: int,
    chunk: int,
) -> tf.Tensor:
    """Σ_i weight_i · gradient(input_i) over `count` copies of each image, `chunk` at a time.

    One `tf.while_loop` iteration evaluates `chunk` copies of the whole batch
    ([chunk·B,H,W,C]), so peak memory is bounded by `chunk`, not by `count`. The loop
    runs its iterations one after the other (`parallel_iterations=1`): otherwise TF
    may run several chunks at once and memory grows again. Padding copies of the last
    chunk have weight 0. Copy i's input depends only on i, so the result does not
    depend on `chunk` (up to float summation order).

    Args:
        logits_fn: images → logits [N,K].
        points_fn: Copy indices [k] → (inputs [k,B,H,W,C], weights [k]); indices ≥
            `count` must get weight 0.
        images: [B,H,W,C], for the shape of the result.
        target: int32 [B], the class explained for every copy of an example.
        count: Number of copies (Python int, fixed at export).
        chunk: At most this many copies per step (Python int).

    Returns:
        float32 [B,H,W,C].
    """
    steps = -(-count // max(1, chunk))
    # Same number of steps, chunks as even as possible: 65 copies by 32 → 3 × 22, not 3 × 32.
    chunk = -(-count // steps)
    targets = tf.tile(target, [chunk])  # copy-major, matching the [k·B] reshape below

    def body(step: tf.Tensor, total: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        indices = step * chunk + tf.range(chunk, dtype=tf.int32)
        inputs, weights = points_fn(indices)
        shape = tf.shape(inputs)
        flat = tf.reshape(inputs, tf.concat([[-1], shape[2:]], axis=0))
        gradients = tf.reshape(gradient_at(logits_fn, flat, targets), shape)
        weighted = tf.tensordot(weights, gradients, axes=[[0], [0]])
        return step + 1, total + weighted

    zero = tf.zeros_like(images)
    _, total = tf.while_loop(
        lambda step, _: step < steps,
        body,
        (tf.constant(0, tf.int32), zero),
        parallel_iterations=1,
        maximum_iterations=steps,
    )
    return total


# A per-image point function maps copy indices int32 [k] to (inputs [k,B,H,W,C], factors
# [k,B,H,W,C] or [k,B,1,1,1], logit weights [k,B]): the sum takes Σ factor · gradient and
# Σ logit weight · the target's logit at the input.
FactorPointsFn = Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor, tf.Tensor]]


def even_chunk(count: int, chunk: int) -> int:
    """The chunk that covers `count` copies in as few loop steps as `chunk` does, evenly.

    65 copies by 32 → 22 (3 steps of 22, not 3 of 32): used as the static chunk of a loop
    whose count varies per request, so the export's default count wastes no evaluations.
    """
    steps = -(-count // max(1, chunk))
    return -(-count // steps)


def chunked_gradient_sum(
    logits_fn: Callable[[tf.Tensor], tf.Tensor],
    points_fn: FactorPointsFn,
    images: tf.Tensor,
    target: tf.Tensor,
    count: tf.Tensor,
    chunk: int,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Σ_i factor_i ⊙ gradient(input_i), and Σ_i logit_weight_i · logit(input_i)[target].

    As `chunked_weighted_gradients`, but the number of copies `count` is a tensor (the
    largest per-request value in the batch, so the cost follows it) and each copy's weight
    may differ per image (per-image step counts, sample counts and baselines): copies an
    image does not use get factor 0. The chunk is static, so peak memory stays bounded by
    `chunk` whatever `count` is.

    Args:
        logits_fn: images → logits [N,K].
        points_fn: Copy indices [chunk] → (inputs, factors, logit weights), see
            `FactorPointsFn`; indices ≥ `count` must get factor and weight 0.
        images: [B,H,W,C], for the shape of the result.
        target: int32 [B], the class explained for every copy of an example.
        count: int32 scalar, the number of copies.
        chunk: Copies per loop step (Python int).

    Returns:
        (float32 [B,H,W,C], float32 [B]).
    """
    chunk = max(1, chunk)
    steps = (count + chunk - 1) // chunk
    targets = tf.tile(target, [chunk])  # copy-major, matching the [k·B] reshape below

    def body(step: tf.Tensor, total: tf.Tensor, logit_total: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        indices = step * chunk + tf.range(chunk, dtype=tf.int32)
        inputs, factors, logit_weights = points_fn(indices)
        shape = tf.shape(inputs)
        flat = tf.reshape(inputs, tf.concat([[-1], shape[2:]], axis=0))
        with tf.GradientTape() as tape:
            tape.watch(flat)
            selected = tf.gather(logits_fn(flat), targets, axis=1, batch_dims=1)
        gradients = tf.reshape(tape.gradient(selected, flat), shape)
        logits_at = tf.reshape(selected, tf.shape(logit_weights))
        return (
            step + 1,
            total + tf.reduce_sum(factors * gradients, axis=0),
            logit_total + tf.reduce_sum(logit_weights * logits_at, axis=0),
        )

    _, total, logit_total = tf.while_loop(
        lambda step, *_: step < steps,
        body,
        (tf.constant(0, tf.int32), tf.zeros_like(images), tf.zeros_like(target, tf.float32)),
        parallel_iterations=1,
    )
    return total, logit_total


def smoothgrad_points(
    images: tf.Tensor, samples: int, sigma: float, seed: int
) -> PointsFn:
    """SmoothGrad copies (Smilkov et al. 2017): x + N(0, σ²), weights 1/n.

    Copy i's noise is `stateless_normal([H,W,C], seed=[seed, i])`: the same for every
    example and every request, so an image's map depends only on the image.
    """
    pixel_shape = tf.shape(images)[1:]

    def points(indices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        noise = tf.map_fn(
            lambda i: tf.random.stateless_normal(pixel_shape, seed=tf.stack([seed, i])),
            indices,
            fn_output_signature=tf.float32,
        )
        inputs = images[None] + sigma * noise[:, None]
        weights = tf.where(indices < samples, 1.0 / samples, 0.0)
        return inputs, weights

    return points


def integrated_gradients_points(
    images: tf.Tensor, baseline: tf.Tensor, steps: int
) -> PointsFn:
    """Integrated Gradients path points (Sundararajan et al. 2017), trapezoidal rule.

    Points x' + (i/m)(x − x') for i = 0..m, weights 1/m with the two endpoints halved:
    m + 1 gradient evaluations, exact for logits linear in the input.
    """

    def points(indices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        alphas = tf.cast(indices, tf.float32) / steps
        inputs = baseline + alphas[:, None, None, None, None] * (images - baseline)[None]
        end = tf.logical_or(tf.equal(indices, 0), tf.equal(indices, steps))
        weights = tf.where(end, 0.5 / steps, 1.0 / steps)
        return inputs, tf.where(indices <= steps, weights, 0.0)

    return points
