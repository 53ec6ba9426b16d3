"""Integrated Gradients (Sundararajan et al. 2017): the path integral from a constant baseline."""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from exporter._attribution import chunked_weighted_gradients, integrated_gradients_points
from exporter._config_loader import check_int, check_number, set_field
from exporter._reference import EagerReference
from exporter.methods._path import PathMethod
from exporter.methods.base import Graph, clean_reference
from serving_client import contract as c

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


class IntegratedGradients(PathMethod):
    """(x − x') × the mean path gradient; also serves the signed attributions and the
    completeness error |Σ attributions − Δlogit| / |Δlogit|."""

    name = "integrated_gradients"
    params_type = IntegratedGradientsParams

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
        return self.path_outputs(graph, outputs, logits, attributions, baseline_logits)

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
        return self.reference_outputs(out, copy, (images - base) * total, base, reduction)
