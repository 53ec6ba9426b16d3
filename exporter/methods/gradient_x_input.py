"""Gradient × Input (Shrikumar et al. 2016): the gradient weighted by the input, elementwise."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from exporter._attribution import vanilla_gradient
from exporter._reference import EagerReference
from exporter.methods.base import Graph, Method, NoParams, clean_reference, numpy_saliency

__all__ = ["GradientXInput"]


class GradientXInput(Method):
    """gradient ⊙ x; one forward and one backward pass, like `explain`."""

    name = "gradient_x_input"

    def explain(self, graph: Graph, images: tf.Tensor, target_class: tf.Tensor, params: NoParams) -> dict[str, tf.Tensor]:
        gradient, logits, target = vanilla_gradient(graph.head.logits_fn, images, graph.target_fn(target_class))
        return graph.explanation(logits, target, graph.saliency(gradient * images))

    def reference(
        self, copy: EagerReference, images: np.ndarray, target_class: np.ndarray | None, reduction: str, params: NoParams
    ) -> dict[str, np.ndarray]:
        out = clean_reference(copy, images, target_class)
        out["gradient"] = copy.gradient(images, out["target_class"])
        out["saliency"] = numpy_saliency(out["gradient"] * images, reduction)
        return out
