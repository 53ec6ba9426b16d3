"""Guided Integrated Gradients (Kapishnikov et al. 2021): an adaptive path chosen by the gradient.

The path starts at a constant baseline and reaches the image in `steps` steps; step t must
bring the L1 distance to the image down to (1 − t/m) of the total. At each step the
gradient is taken once, at the path's current point, and only the `fraction` of features
with the smallest |gradient| move (all the way towards their bound, then the next
smallest, until the step's L1 target is met). Every feature stays within `max_dist` (in
α) of the straight line: features that fall behind α − max_dist are pulled up to it and
features that reach α + max_dist stop. The attribution is Σ_steps Δx ⊙ gradient, which
sums to F(x) − F(baseline) up to the Riemann sum's error (exactly for a linear model).

The selection is per example: the threshold is the `fraction` quantile of |gradient|
(the lower neighbour, as numpy's `quantile(..., method="lower")` that PAIR's
`saliency.core.GuidedIG` uses), found with `tf.sort`. The path state is float64 so the
L1 targets and the "has it reached its bound" tests are as exact as PAIR's numpy code.

Per request: `steps` (an optional signature input, one value per image, default this
table's `steps`, at most `max_steps`). Not `baseline`, `samples` or `noise`: each baseline or
noisy copy is another sequential path of `steps` gradients, so their cost would multiply the
latency of a method that is already the slowest; use Integrated Gradients for those.

Cost: max(steps in the batch) gradient evaluations of the batch, one after the other (each
step's point depends on the previous step's gradient, so the steps cannot be batched as IG's
are; `internal_batch` does not apply); an image whose own path is shorter stays put after
its last step. Memory O(batch × pixels); latency ∝ steps.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from exporter._attribution import gradient_at
from exporter._config_loader import check_int, check_number, set_field
from exporter._errors import ConfigError
from exporter._reference import EagerReference
from exporter.methods._path import PathMethod
from exporter.methods.base import Graph, clean_reference
from exporter.methods.integrated_gradients import STEPS_INPUT, check_maximum, request_values
from serving_client import contract as c

__all__ = ["GuidedIntegratedGradients", "GuidedIntegratedGradientsParams"]

# Relative and absolute tolerance of "the step's L1 target is reached" (PAIR's EPSILON).
_EPSILON = 1e-9


@dataclasses.dataclass(frozen=True)
class GuidedIntegratedGradientsParams:
    """`[methods.guided_integrated_gradients]` (PAIR's `GuidedIG.GetMask` arguments).

    Attributes:
        steps: m, the path's steps (m gradient evaluations, sequential); the default of the
            per-request `steps`.
        max_steps: The largest `steps` a request may ask for (default 4 × steps, at least 256).
        fraction: The fraction of features, in (0, 1], moved at each selection.
        max_dist: How far (in α, [0, 1]) a feature may stray from the straight line; 0 is IG
            on the straight line (a left Riemann sum), 1 leaves the path unbounded.
        baseline: The constant baseline image value (0 = black).
    """

    steps: int = 200
    fraction: float = 0.25
    max_dist: float = 0.02
    baseline: float = 0.0
    max_steps: int | None = None

    def __post_init__(self) -> None:
        check_int("methods.guided_integrated_gradients.steps", self.steps, minimum=1)
        set_field(
            self,
            "max_steps",
            check_maximum("methods.guided_integrated_gradients.max_steps", self.max_steps, self.steps, 256, "steps"),
        )
        fraction = check_number("methods.guided_integrated_gradients.fraction", self.fraction, positive=True)
        if fraction > 1:
            raise ConfigError(f"methods.guided_integrated_gradients.fraction must be in (0, 1]; received {fraction}.")
        set_field(self, "fraction", fraction)
        max_dist = check_number("methods.guided_integrated_gradients.max_dist", self.max_dist, minimum=0)
        if max_dist > 1:
            raise ConfigError(f"methods.guided_integrated_gradients.max_dist must be in [0, 1]; received {max_dist}.")
        set_field(self, "max_dist", max_dist)
        set_field(self, "baseline", check_number("methods.guided_integrated_gradients.baseline", self.baseline))


def _quantile_index(fraction: float, features: int) -> int:
    """The sorted position numpy's quantile(method="lower") takes: ⌊fraction·(n − 1)⌋."""
    return math.floor(fraction * (features - 1))


def guided_path_attributions(
    graph: Graph,
    images: tf.Tensor,
    target: tf.Tensor,
    params: GuidedIntegratedGradientsParams,
    steps: tf.Tensor | None = None,
) -> tf.Tensor:
    """The Guided IG attributions [B,H,W,C] (float32) of `images` for `target`, in the graph.

    `steps`: int32 [B], each image's own m (default: the params' steps for all).
    """
    shape = tf.shape(images)
    features = int(np.prod(images.shape[1:]))
    index = _quantile_index(params.fraction, features)
    end = tf.reshape(tf.cast(images, tf.float64), [-1, features])
    start = tf.fill(tf.shape(end), tf.constant(params.baseline, tf.float64))
    diff = end - start
    moving = tf.not_equal(diff, 0.0)
    safe_diff = tf.where(moving, diff, 1.0)
    l1_total = tf.reduce_sum(tf.abs(diff), axis=1)
    if steps is None:
        steps = tf.fill(tf.shape(l1_total), params.steps)
    own_steps = tf.cast(steps, tf.float64)[:, None]  # [B,1]
    last = tf.reduce_max(steps)
    inf = tf.constant(np.inf, tf.float64)

    def step_body(step: tf.Tensor, x: tf.Tensor, attr: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        point = tf.reshape(tf.cast(x, tf.float32), shape)
        grad_actual = tf.reshape(tf.cast(gradient_at(graph.head.logits_fn, point, target), tf.float64), [-1, features])
        alpha = tf.minimum(tf.cast(step + 1, tf.float64) / own_steps, 1.0)
        alpha_min = tf.maximum(alpha - params.max_dist, 0.0)
        alpha_max = tf.minimum(alpha + params.max_dist, 1.0)
        x_min = start + diff * alpha_min
        x_max = start + diff * alpha_max
        l1_target = l1_total * (1.0 - alpha[:, 0])

        def select_body(
            x: tf.Tensor, grad: tf.Tensor, done: tf.Tensor
        ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
            active = tf.logical_not(done)[:, None]
            x_alpha = tf.where(moving, (x - start) / safe_diff, alpha_max)
            pulled = tf.where(x_alpha < alpha_min, x_min, x)  # features behind α − max_dist
            l1_current = tf.reduce_sum(tf.abs(pulled - end), axis=1)
            gap = l1_current - l1_target
            close = tf.abs(gap) <= tf.maximum(_EPSILON * tf.maximum(tf.abs(l1_current), tf.abs(l1_target)), _EPSILON)
            marked = tf.where(tf.equal(pulled, x_max), inf, grad)  # at their bound: never selected
            magnitude = tf.abs(marked)
            threshold = tf.sort(magnitude, axis=1)[:, index : index + 1]
            selected = tf.logical_and(magnitude <= threshold, tf.not_equal(marked, inf))
            l1_selected = tf.reduce_sum(tf.abs(pulled - x_max) * tf.cast(selected, tf.float64), axis=1)
            gamma = tf.where(l1_selected > 0, gap / tf.where(l1_selected > 0, l1_selected, 1.0), inf)
            moved = tf.where(
                selected,
                tf.where(gamma[:, None] > 1.0, x_max, pulled + (x_max - pulled) * gamma[:, None]),
                pulled,
            )
            new_x = tf.where(close[:, None], pulled, moved)
            return (
                tf.where(active, new_x, x),
                tf.where(active, marked, grad),
                tf.logical_or(done, tf.logical_or(close, gamma <= 1.0)),
            )

        done = step >= steps  # an image past its own last step stays where it is
        x_next, _, _ = tf.while_loop(
            lambda x, grad, done: tf.logical_not(tf.reduce_all(done)),
            select_body,
            (x, grad_actual, done),
            # Each unfinished selection pins at least one more feature at its bound.
            maximum_iterations=features + 2,
        )
        return step + 1, x_next, attr + (x_next - x) * grad_actual

    _, _, attr = tf.while_loop(
        lambda step, x, attr: step < last,
        step_body,
        (tf.constant(0, tf.int32), start, tf.zeros_like(start)),
        parallel_iterations=1,
    )
    return tf.reshape(tf.cast(attr, tf.float32), shape)


def _numpy_guided_path(
    copy: EagerReference, image: np.ndarray, target: int, params: GuidedIntegratedGradientsParams, steps: int
) -> np.ndarray:
    """One image's Guided IG in float64 numpy, feature by feature in order of |gradient|."""
    end = image.astype(np.float64).ravel()
    start = np.full_like(end, params.baseline)
    diff = end - start
    l1_total = np.abs(diff).sum()
    attr = np.zeros_like(end)
    if l1_total == 0:
        return attr.reshape(image.shape)
    x = start.copy()
    index = _quantile_index(params.fraction, end.size)
    targets = np.array([target], np.int32)
    for step in range(steps):
        gradient = copy.gradient(x.reshape((1, *image.shape)).astype(np.float32), targets).astype(np.float64).ravel()
        alpha = (step + 1) / steps
        low, high = max(alpha - params.max_dist, 0.0), min(alpha + params.max_dist, 1.0)
        x_min, x_max = start + diff * low, start + diff * high
        l1_target = l1_total * (1 - alpha)
        pinned = np.zeros(end.size, bool)
        before = x.copy()
        while True:
            with np.errstate(divide="ignore", invalid="ignore"):
                behind = np.where(diff != 0, (x - start) / diff, high) < low
            x[behind] = x_min[behind]
            l1_current = np.abs(x - end).sum()
            if math.isclose(l1_target, l1_current, rel_tol=_EPSILON, abs_tol=_EPSILON):
                break
            pinned |= x == x_max
            magnitude = np.where(pinned, np.inf, np.abs(gradient))
            threshold = np.sort(magnitude)[index]
            chosen = (magnitude <= threshold) & ~pinned
            reducible = np.abs(x - x_max)[chosen].sum()
            gamma = (l1_current - l1_target) / reducible if reducible > 0 else np.inf
            x[chosen] = x_max[chosen] if gamma > 1 else x[chosen] + (x_max[chosen] - x[chosen]) * gamma
            if gamma <= 1:
                break
        attr += (x - before) * gradient
    return attr.reshape(image.shape)


class GuidedIntegratedGradients(PathMethod):
    """Guided IG; serves the signed attributions and the completeness error
    |Σ attributions − (F(x) − F(x'))| / |F(x) − F(x')| (as Vertex's `approximation_error`)."""

    name = "guided_integrated_gradients"
    params_type = GuidedIntegratedGradientsParams
    request_inputs = (STEPS_INPUT,)

    def explain(
        self,
        graph: Graph,
        images: tf.Tensor,
        target_class: tf.Tensor,
        params: GuidedIntegratedGradientsParams,
        request: Mapping[str, tf.Tensor] | None = None,
    ) -> dict[str, tf.Tensor]:
        logits, outputs = graph.clean_pass(images, target_class)
        target = outputs[c.TARGET_CLASS]
        attributions = guided_path_attributions(graph, images, target, params, (request or {}).get(c.STEPS))
        baseline = tf.fill(tf.shape(images[:1]), tf.constant(params.baseline, tf.float32))
        return self.path_outputs(graph, outputs, logits, attributions, graph.head.logits_fn(baseline)[0])

    def reference(
        self,
        copy: EagerReference,
        images: np.ndarray,
        target_class: np.ndarray | None,
        reduction: str,
        params: GuidedIntegratedGradientsParams,
        request: Mapping[str, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """Each image's path eagerly, with its own steps, one gradient per step."""
        out = clean_reference(copy, images, target_class)
        target = out["target_class"]
        steps = request_values(request, params, self.request_inputs, len(images), images.shape[1:])[c.STEPS]
        attributions = np.stack(
            [
                _numpy_guided_path(copy, im, int(t), params, int(m))
                for im, t, m in zip(images, target, steps, strict=True)
            ]
        )
        base = np.full_like(images, params.baseline)
        return self.reference_outputs(out, copy, attributions, base, reduction)
