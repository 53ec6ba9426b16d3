"""SmoothGrad (Smilkov et al. 2017): the gradient averaged over noisy copies of the image.

Per request (optional signature inputs, one value per image, defaults from this table):
`samples` and `noise`. Cost: max(samples) gradient evaluations of the batch,
`internal_batch` copies at a time; images asking fewer get zero weight beyond their own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from exporter._attribution import chunked_gradient_sum, even_chunk
from exporter._config_loader import check_int, check_number, check_range, set_field
from exporter._reference import EagerReference
from exporter.methods.base import Graph, Method, clean_reference, numpy_saliency
from exporter.methods.integrated_gradients import (
    NOISE_INPUT,
    SAMPLES_INPUT,
    check_maximum,
    noise_images,
    numpy_noise,
    request_values,
)
from serving_client import contract as c

__all__ = ["SmoothGrad", "SmoothGradParams"]


@dataclasses.dataclass(frozen=True)
class SmoothGradParams:
    """`[methods.smoothgrad]`: the defaults of the per-request inputs, and their bounds.

    Attributes:
        samples: n, the noisy copies averaged.
        noise: σ as a fraction of the input range (0 gives the vanilla gradient).
        max_samples: The largest `samples` a request may ask for (default 4 × samples, at
            least 64).
        input_range: (low, high) of the model's inputs; σ = noise × (high − low).
        seed: Seed of the stateless noise (same request → same answer).
    """

    samples: int = 16
    noise: float = 0.15
    max_samples: int | None = None
    input_range: tuple[float, float] = (0.0, 1.0)
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("methods.smoothgrad.samples", self.samples, minimum=1)
        set_field(self, "noise", check_number("methods.smoothgrad.noise", self.noise, minimum=0))
        set_field(
            self,
            "max_samples",
            check_maximum("methods.smoothgrad.max_samples", self.max_samples, self.samples, 64, "samples"),
        )
        set_field(self, "input_range", check_range("methods.smoothgrad.input_range", self.input_range))
        check_int("methods.smoothgrad.seed", self.seed, minimum=0)

    @property
    def sigma(self) -> float:
        """The noise's standard deviation in input units."""
        return self.noise * self.scale

    @property
    def scale(self) -> float:
        """high − low of the input range (σ = noise × scale)."""
        low, high = self.input_range
        return high - low


class SmoothGrad(Method):
    """Mean gradient over x + N(0, σ²) copies; copy i's noise is `stateless_normal(seed=[seed, i])`."""

    name = "smoothgrad"
    params_type = SmoothGradParams

    request_inputs = (SAMPLES_INPUT, NOISE_INPUT)

    def explain(
        self,
        graph: Graph,
        images: tf.Tensor,
        target_class: tf.Tensor,
        params: SmoothGradParams,
        request: Mapping[str, tf.Tensor] | None = None,
    ) -> dict[str, tf.Tensor]:
        _, outputs = graph.clean_pass(images, target_class)
        request = dict(request or {})
        batch = tf.shape(images)[0]
        samples = request.get(c.SAMPLES, tf.fill([batch], params.samples))
        noise = request.get(c.NOISE, tf.fill([batch], tf.constant(params.noise, tf.float32)))
        sigma = (noise * params.scale)[None, :, None, None, None]
        count = tf.reduce_max(samples)
        pixel_shape = tf.shape(images)[1:]

        def copies(indices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
            inputs = images[None] + sigma * noise_images(params.seed, indices, pixel_shape)[:, None]
            used = tf.logical_and((indices < count)[:, None], indices[:, None] < samples[None])
            weights = tf.where(used, 1.0 / tf.cast(samples, tf.float32)[None], 0.0)
            return inputs, weights[:, :, None, None, None], tf.zeros_like(weights)

        gradient, _ = chunked_gradient_sum(
            graph.head.logits_fn,
            copies,
            images,
            outputs[c.TARGET_CLASS],
            count,
            even_chunk(params.samples, graph.internal_batch),
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
        request: Mapping[str, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """One noisy copy at a time, eagerly, each image with its own samples and noise; the
        target comes from the clean image."""
        out = clean_reference(copy, images, target_class)
        values = request_values(request, params, self.request_inputs, len(images), images.shape[1:])
        samples = values[c.SAMPLES].astype(int)
        sigma = values[c.NOISE].astype(np.float32) * np.float32(params.scale)
        gradient = np.zeros(images.shape, np.float64)
        for i in range(int(samples.max())):
            who = np.flatnonzero(i < samples)
            noisy = images[who] + sigma[who, None, None, None] * numpy_noise(params.seed, i, images.shape[1:])[None]
            gradient[who] += copy.gradient(noisy, out["target_class"][who]) / samples[who, None, None, None]
        out["gradient"] = gradient.astype(np.float32)
        out["saliency"] = numpy_saliency(out["gradient"], reduction)
        return out
