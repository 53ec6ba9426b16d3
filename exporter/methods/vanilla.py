"""Vanilla gradient (Simonyan et al. 2013): d logit[target] / d input, the `explain` signature."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from exporter._attribution import vanilla_gradient
from exporter._reference import EagerReference, reference_explain
from exporter.methods.base import Graph, Method, NoParams
from serving_client import contract as c

__all__ = ["Vanilla"]


class Vanilla(Method):
    """The gradient of the target logit; one forward and one backward pass. Always exported."""

    name = c.VANILLA

    def explain(self, graph: Graph, images: tf.Tensor, target_class: tf.Tensor, params: NoParams) -> dict[str, tf.Tensor]:
        gradient, logits, target = vanilla_gradient(graph.head.logits_fn, images, graph.target_fn(target_class))
        return graph.explanation(logits, target, graph.saliency(gradient))

    def reference(
        self, copy: EagerReference, images: np.ndarray, target_class: np.ndarray | None, reduction: str, params: NoParams
    ) -> dict[str, np.ndarray]:
        return reference_explain(copy, images, target_class, reduction)
