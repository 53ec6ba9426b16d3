"""SmoothGrad (Smilkov et al. 2017): the gradient averaged over noisy copies of the image."""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from exporter._attribution import chunked_weighted_gradients, smoothgrad_points
from exporter._config_loader import check_int, check_number, check_range, set_field
from exporter._reference import EagerReference
from exporter.methods.base import Graph, Method, clean_reference, numpy_saliency
from serving_client import contract as c

__all__ = ["SmoothGrad", "SmoothGradParams"]


@dataclasses.dataclass(frozen=True)
class SmoothGradParams:
    """`[methods.smoothgrad]`, fixed at export.

    Attributes:
        samples: n, the noisy copies averaged.
        noise: σ as a fraction of the input range (0 gives the vanilla gradient).
        input_range: (low, high) of the model's inputs; σ = noise × (high − low).
        seed: Seed of the stateless noise (same request → same answer).
    """

    samples: int = 16
    noise: float = 0.15
    input_range: tuple[float, float] = (0.0, 1.0)
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("methods.smoothgrad.samples", self.samples, minimum=1)
        set_field(self, "noise", check_number("methods.smoothgrad.noise", self.noise, minimum=0))
        set_field(self, "input_range", check_range("methods.smoothgrad.input_range", self.input_range))
        check_int("methods.smoothgrad.seed", self.seed, minimum=0)

    @property
    def sigma(self) -> float:
        """The noise's standard deviation in input units."""
        low, high = self.input_range
        return self.noise * (high - low)


class SmoothGrad(Method):
    """Mean gradient over x + N(0, σ²) copies; copy i's noise is `stateless_normal(seed=[seed, i])`."""

    name = "smoothgrad"
    params_type = SmoothGradParams

    def explain(
        self, graph: Graph, images: tf.Tensor, target_class: tf.Tensor, params: SmoothGradParams
    ) -> dict[str, tf.Tensor]:
        _, outputs = graph.clean_pass(images, target_class)
        gradient = chunked_weighted_gradients(
            graph.head.logits_fn,
            smoothgrad_points(images, params.samples, params.sigma, params.seed),
            images,
            outputs[c.TARGET_CLASS],
            params.samples,
            graph.internal_batch,
        )
        outputs[c.SALIENCY] = graph.saliency(gradient)
        return outputs

    def reference(
        self,
        copy: EagerReference,
        images: np.ndarray,
        target_class: np.ndarray | None,
        reduction: str,
        params: SmoothGradParams,
    ) -> dict[str, np.ndarray]:
        """One noisy copy at a time, eagerly; the target comes from the clean image."""
        out = clean_reference(copy, images, target_class)
        total = np.zeros(images.shape, np.float64)
        for i in range(params.samples):
            noise = tf.random.stateless_normal(images.shape[1:], seed=[params.seed, i]).numpy()
            total += copy.gradient(images + np.float32(params.sigma) * noise, out["target_class"])
        out["gradient"] = (total / params.samples).astype(np.float32)
        out["saliency"] = numpy_saliency(out["gradient"], reduction)
        return out
