"""Integrated Gradients (Sundararajan et al. 2017): the path integral from a constant baseline."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from exporter import _contract as c
from exporter._attribution import chunked_weighted_gradients, integrated_gradients_points
from exporter._config_loader import check_int, check_number, set_field
from exporter._reference import EagerReference
from exporter.methods.base import (
    Check,
    Graph,
    Method,
    clean_reference,
    max_abs_diff,
    numpy_saliency,
)

__all__ = ["IntegratedGradients", "IntegratedGradientsParams"]


@dataclasses.dataclass(frozen=True)
class IntegratedGradientsParams:
    """`[methods.integrated_gradients]`, fixed at export.

    Attributes:
        steps: m, the integration intervals (trapezoidal rule, m + 1 gradient evaluations).
        baseline: The constant baseline image value (0 = black).
    """

    steps: int = 64
    baseline: float = 0.0

    def __post_init__(self) -> None:
        check_int("methods.integrated_gradients.steps", self.steps, minimum=1)
        set_field(self, "baseline", check_number("methods.integrated_gradients.baseline", self.baseline))


class IntegratedGradients(Method):
    """(x − x') × the mean path gradient; also serves the signed attributions and the
    completeness error |Σ attributions − Δlogit| / |Δlogit|."""

    name = "integrated_gradients"
    params_type = IntegratedGradientsParams
    outputs = c.IG_OUTPUTS

    def explain(
        self, graph: Graph, images: tf.Tensor, target_class: tf.Tensor, params: IntegratedGradientsParams
    ) -> dict[str, tf.Tensor]:
        logits, outputs = graph.clean_pass(images, target_class)
        target = outputs[c.TARGET_CLASS]
        baseline = tf.fill(tf.shape(images), tf.constant(params.baseline, tf.float32))
        mean_gradient = chunked_weighted_gradients(
            graph.head.logits_fn,
            integrated_gradients_points(images, baseline, params.steps),
            images,
            target,
            params.steps + 1,
            graph.internal_batch,
        )
        attributions = (images - baseline) * mean_gradient
        # One baseline image serves the whole batch: it is the same constant for all.
        baseline_logits = graph.head.logits_fn(baseline[:1])[0]
        delta = tf.gather(logits, target, axis=1, batch_dims=1) - tf.gather(baseline_logits, target)
        total = tf.reduce_sum(attributions, axis=[1, 2, 3])
        outputs[c.ATTRIBUTIONS] = attributions
        outputs[c.APPROXIMATION_ERROR] = tf.math.divide_no_nan(tf.abs(total - delta), tf.abs(delta))
        outputs[c.SALIENCY] = graph.saliency(attributions)
        return outputs

    def reference(
        self,
        copy: EagerReference,
        images: np.ndarray,
        target_class: np.ndarray | None,
        reduction: str,
        params: IntegratedGradientsParams,
    ) -> dict[str, np.ndarray]:
        """The trapezoidal rule over m + 1 points, one eager gradient per point."""
        steps = params.steps
        out = clean_reference(copy, images, target_class)
        target = out["target_class"]
        base = np.full_like(images, params.baseline)
        total = np.zeros(images.shape, np.float64)
        for i in range(steps + 1):
            weight = (0.5 if i in (0, steps) else 1.0) / steps
            point = (base + (i / steps) * (images - base)).astype(np.float32)
            total += weight * copy.gradient(point, target)
        attributions = (images - base) * total
        rows = np.arange(len(target))
        delta = out["logits"][rows, target].astype(np.float64) - copy.logits(base)[rows, target]
        error = np.abs(attributions.sum(axis=(1, 2, 3)) - delta)
        out["attributions"] = attributions.astype(np.float32)
        out["approximation_error"] = np.where(delta != 0, error / np.where(delta != 0, np.abs(delta), 1.0), 0.0)
        out["saliency"] = numpy_saliency(out["attributions"], reduction)
        return out

    def checks(self, served: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray], atol: float) -> list[Check]:
        """The map, the attributions (relative to their largest magnitude) and the error."""
        scale = max(float(np.max(np.abs(reference[c.ATTRIBUTIONS]))), 1e-12)
        return [
            *super().checks(served, reference, atol),
            ("attributions_relative", max_abs_diff(served[c.ATTRIBUTIONS], reference[c.ATTRIBUTIONS]) / scale, atol),
            ("approximation_error", max_abs_diff(served[c.APPROXIMATION_ERROR], reference[c.APPROXIMATION_ERROR]), atol),
        ]

    def figures(self, served: Mapping[str, np.ndarray]) -> dict[str, float]:
        """The largest completeness error served."""
        return {"approximation_error_max": float(np.max(served[c.APPROXIMATION_ERROR]))}
