"""Blur Integrated Gradients (Xu et al. 2020): the path integral along successive Gaussian blurs.

The path is γ(σ) = G_σ ∗ x, from the image blurred with the largest σ (the baseline) to
the image itself (σ = 0). The attribution of feature i is −∫ ∂F/∂x_i(γ(σ)) ∂γ_i/∂σ dσ,
approximated as PAIR's `saliency.core.BlurIG` does: a left Riemann sum over `steps`
blur levels σ_0 = 0 < σ_1 < … < σ_m, with ∂γ/∂σ taken over `grad_step`, or (the
default, `grad_step = 0`) over the chord to the next level, γ(σ_{i+1}) − γ(σ_i):
then the attributions sum exactly (telescoping) to F(x) − F(γ(σ_m)) for a model
linear in its input, and `approximation_error` measures only the curvature of F.

The blur is SciPy's `ndimage.gaussian_filter` (what PAIR uses) with its defaults:
a kernel truncated at radius ⌊4σ + 0.5⌋, normalized over its taps, zero outside the
image, applied along height and width (not channels). In the graph it is two matrix
products per copy (an H×H and a W×W banded matrix built from σ), so the cost is
O((H + W)·H·W·C) per path point on top of the model's gradient.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import tensorflow as tf

from exporter._attribution import gradient_at
from exporter._config_loader import check_bool, check_int, check_number, set_field
from exporter._reference import EagerReference
from exporter.methods._path import PathMethod
from exporter.methods.base import Graph, clean_reference
from serving_client import contract as c

__all__ = ["BlurIntegratedGradients", "BlurIntegratedGradientsParams"]

# SciPy's gaussian_filter default: the kernel reaches 4 standard deviations.
_TRUNCATE = 4.0


@dataclasses.dataclass(frozen=True)
class BlurIntegratedGradientsParams:
    """`[methods.blur_integrated_gradients]`, fixed at export (PAIR's `BlurIG.GetMask` arguments).

    Attributes:
        steps: m, the blur levels of the Riemann sum (m gradient evaluations).
        max_sigma: σ of the most blurred image, the path's start (in pixels).
        grad_step: The σ increment of the finite difference for ∂γ/∂σ (PAIR's default is
            0.01); 0 takes the chord to the next blur level, which makes the attributions
            complete for a linear model.
        sqrt: Space the levels as σ_i = √(i·max_sigma/m) instead of i·max_sigma/m (PAIR's
            `sqrt`; the path then starts at σ = √max_sigma).
    """

    steps: int = 100
    max_sigma: float = 50.0
    grad_step: float = 0.0
    sqrt: bool = False

    def __post_init__(self) -> None:
        check_int("methods.blur_integrated_gradients.steps", self.steps, minimum=1)
        set_field(
            self,
            "max_sigma",
            check_number("methods.blur_integrated_gradients.max_sigma", self.max_sigma, positive=True),
        )
        set_field(
            self,
            "grad_step",
            check_number("methods.blur_integrated_gradients.grad_step", self.grad_step, minimum=0),
        )
        check_bool("methods.blur_integrated_gradients.sqrt", self.sqrt)

    def sigmas(self) -> list[float]:
        """σ_0 … σ_m, in float64 as PAIR computes them."""
        m = self.steps
        if self.sqrt:
            return [math.sqrt(i * self.max_sigma / m) for i in range(m + 1)]
        return [i * self.max_sigma / m for i in range(m + 1)]

    def schedule(self) -> tuple[list[float], list[float], list[float]]:
        """Per path point i < m: (σ_i, the σ its derivative is taken towards, the factor).

        Point i contributes factor_i · (γ(σ_i) − γ(ahead_i)) ⊙ ∇F(γ(σ_i)): PAIR's
        −Δσ_i · (γ(σ_i + h) − γ(σ_i)) / h, or the chord γ(σ_i) − γ(σ_{i+1}) for h = 0.
        """
        sigmas = self.sigmas()
        points = sigmas[:-1]
        if self.grad_step == 0:
            return points, sigmas[1:], [1.0] * self.steps
        ahead = [s + self.grad_step for s in points]
        factors = [(sigmas[i + 1] - sigmas[i]) / self.grad_step for i in range(self.steps)]
        return points, ahead, factors


def _radius(sigma: float) -> int:
    return int(_TRUNCATE * sigma + 0.5)


def _blur_matrices(sigmas: tf.Tensor, radii: tf.Tensor, size: tf.Tensor, max_radius: int) -> tf.Tensor:
    """[k] σ and radii → [k, n, n] matrices M with (M v) = the 1-D truncated Gaussian of v.

    M[i, j] = exp(−(i − j)²/2σ²) / Z for |i − j| ≤ radius, Z the sum over all 2r + 1 taps
    (taps outside the image multiply the zero padding, so they count only in Z).
    """
    sigma2 = tf.maximum(tf.square(sigmas), 1e-30)[:, None]  # σ = 0: radius 0, only the centre
    taps = tf.range(-max_radius, max_radius + 1, dtype=tf.float32)[None]
    inside = tf.abs(taps) <= radii[:, None]
    norm = tf.reduce_sum(tf.where(inside, tf.exp(-0.5 * tf.square(taps) / sigma2), 0.0), axis=1)
    position = tf.range(size, dtype=tf.float32)
    offsets = (position[:, None] - position[None, :])[None]
    band = tf.abs(offsets) <= radii[:, None, None]
    weights = tf.where(band, tf.exp(-0.5 * tf.square(offsets) / sigma2[:, :, None]), 0.0)
    return weights / norm[:, None, None]


def _blur(images: tf.Tensor, sigmas: tf.Tensor, radii: tf.Tensor, max_radius: int) -> tf.Tensor:
    """images [B,H,W,C], σ [k] → [k,B,H,W,C], each image blurred with each σ."""
    shape = tf.shape(images)
    rows = _blur_matrices(sigmas, radii, shape[1], max_radius)
    cols = _blur_matrices(sigmas, radii, shape[2], max_radius)
    blurred_rows = tf.einsum("kip,bpqc->kbiqc", rows, images)
    return tf.einsum("kjq,kbiqc->kbijc", cols, blurred_rows)


def blur_path_attributions(
    graph: Graph, images: tf.Tensor, target: tf.Tensor, params: BlurIntegratedGradientsParams
) -> tf.Tensor:
    """Σ_i factor_i · (γ(σ_i) − γ(ahead_i)) ⊙ ∇F(γ(σ_i)), `internal_batch` points at a time.

    As `exporter._attribution.chunked_weighted_gradients`, but each point's weight is a
    tensor (the path's direction there), not a scalar: peak memory O(B × internal_batch).
    """
    points, ahead, factors = params.schedule()
    count = params.steps
    max_radius = _radius(max(points + ahead))
    steps = -(-count // max(1, graph.internal_batch))
    chunk = -(-count // steps)
    sigma_at = tf.constant(points, tf.float32)
    ahead_at = tf.constant(ahead, tf.float32)
    radius_at = tf.constant([float(_radius(s)) for s in points], tf.float32)
    ahead_radius_at = tf.constant([float(_radius(s)) for s in ahead], tf.float32)
    factor_at = tf.constant(factors, tf.float32)
    targets = tf.tile(target, [chunk])  # copy-major, matching the [k·B] reshape below

    def body(step: tf.Tensor, total: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        indices = step * chunk + tf.range(chunk, dtype=tf.int32)
        valid = indices < count
        at = tf.minimum(indices, count - 1)  # padding copies repeat the last point, weight 0
        inputs = _blur(images, tf.gather(sigma_at, at), tf.gather(radius_at, at), max_radius)
        further = _blur(images, tf.gather(ahead_at, at), tf.gather(ahead_radius_at, at), max_radius)
        factor = tf.where(valid, tf.gather(factor_at, at), 0.0)[:, None, None, None, None]
        shape = tf.shape(inputs)
        flat = tf.reshape(inputs, tf.concat([[-1], shape[2:]], axis=0))
        gradients = tf.reshape(gradient_at(graph.head.logits_fn, flat, targets), shape)
        return step + 1, total + tf.reduce_sum(factor * (inputs - further) * gradients, axis=0)

    _, total = tf.while_loop(
        lambda step, _: step < steps,
        body,
        (tf.constant(0, tf.int32), tf.zeros_like(images)),
        parallel_iterations=1,
        maximum_iterations=steps,
    )
    return total


def _numpy_blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """The same Gaussian in float64 by shift-and-add along H then W (independent of `_blur`)."""
    radius = _radius(sigma)
    if radius == 0:
        return images.astype(np.float64)
    taps = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * taps.astype(np.float64) ** 2 / sigma**2)
    kernel /= kernel.sum()
    out = images.astype(np.float64)
    for axis in (1, 2):
        size = out.shape[axis]
        blurred = np.zeros_like(out)
        for tap, weight in zip(taps, kernel, strict=True):
            if abs(tap) >= size:
                continue  # reads only the zero padding
            # out[i] += w(tap) · in[i + tap]
            src = [slice(None)] * out.ndim
            dst = [slice(None)] * out.ndim
            src[axis] = slice(max(tap, 0), size + min(tap, 0))
            dst[axis] = slice(max(-tap, 0), size - max(tap, 0))
            blurred[tuple(dst)] += weight * out[tuple(src)]
        out = blurred
    return out


class BlurIntegratedGradients(PathMethod):
    """Blur IG; serves the signed attributions and the completeness error
    |Σ attributions − (F(x) − F(blurred x))| / |F(x) − F(blurred x)| (Vertex's
    `approximation_error`, with the most blurred image as the baseline)."""

    name = "blur_integrated_gradients"
    params_type = BlurIntegratedGradientsParams

    def explain(
        self, graph: Graph, images: tf.Tensor, target_class: tf.Tensor, params: BlurIntegratedGradientsParams
    ) -> dict[str, tf.Tensor]:
        logits, outputs = graph.clean_pass(images, target_class)
        target = outputs[c.TARGET_CLASS]
        attributions = blur_path_attributions(graph, images, target, params)
        start = params.sigmas()[-1]
        baseline = _blur(
            images, tf.constant([start], tf.float32), tf.constant([float(_radius(start))]), _radius(start)
        )[0]
        return self.path_outputs(graph, outputs, logits, attributions, graph.head.logits_fn(baseline))

    def reference(
        self,
        copy: EagerReference,
        images: np.ndarray,
        target_class: np.ndarray | None,
        reduction: str,
        params: BlurIntegratedGradientsParams,
    ) -> dict[str, np.ndarray]:
        """One eager gradient per blur level, blurs in float64 numpy."""
        out = clean_reference(copy, images, target_class)
        target = out["target_class"]
        total = np.zeros(images.shape, np.float64)
        for sigma, ahead, factor in zip(*params.schedule(), strict=True):
            point = _numpy_blur(images, sigma)
            direction = factor * (point - _numpy_blur(images, ahead))
            total += direction * copy.gradient(point.astype(np.float32), target)
        baseline = _numpy_blur(images, params.sigmas()[-1]).astype(np.float32)
        return self.reference_outputs(out, copy, total, baseline, reduction)
