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

Per request: `steps` (an optional signature input, one value per image, default this
table's `steps`, at most `max_steps`); image b's levels are σ_i = i·max_sigma/m_b. The loop
runs to the largest m in the batch (cost follows it), `internal_batch` points at a time;
an image's points beyond its own m have weight 0. Not `baseline` (the path's start is the
blurred image itself), nor `samples`/`noise` (use Integrated Gradients for SmoothGrad inside
a path method).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from exporter._attribution import even_chunk, gradient_at
from exporter._config_loader import check_bool, check_int, check_number, set_field
from exporter._reference import EagerReference
from exporter.methods._path import PathMethod
from exporter.methods.base import Graph, clean_reference
from exporter.methods.integrated_gradients import STEPS_INPUT, check_maximum, request_values
from serving_client import contract as c

__all__ = ["BlurIntegratedGradients", "BlurIntegratedGradientsParams"]

# SciPy's gaussian_filter default: the kernel reaches 4 standard deviations.
_TRUNCATE = 4.0


@dataclasses.dataclass(frozen=True)
class BlurIntegratedGradientsParams:
    """`[methods.blur_integrated_gradients]`, fixed at export (PAIR's `BlurIG.GetMask` arguments).

    Attributes:
        steps: m, the blur levels of the Riemann sum (m gradient evaluations); the default
            of the per-request `steps`.
        max_steps: The largest `steps` a request may ask for (default 4 × steps, at least 256).
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
    max_steps: int | None = None

    def __post_init__(self) -> None:
        check_int("methods.blur_integrated_gradients.steps", self.steps, minimum=1)
        set_field(
            self,
            "max_steps",
            check_maximum("methods.blur_integrated_gradients.max_steps", self.max_steps, self.steps, 256, "steps"),
        )
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
    """σ and radii [...] → [..., n, n] matrices M with (M v) = the 1-D truncated Gaussian of v.

    M[i, j] = exp(−(i − j)²/2σ²) / Z for |i − j| ≤ radius, Z the sum over all 2r + 1 taps
    (taps outside the image multiply the zero padding, so they count only in Z).
    """
    sigma2 = tf.maximum(tf.square(sigmas), 1e-30)[..., None]  # σ = 0: radius 0, only the centre
    taps = tf.range(-max_radius, max_radius + 1, dtype=tf.float32)
    inside = tf.abs(taps) <= radii[..., None]
    norm = tf.reduce_sum(tf.where(inside, tf.exp(-0.5 * tf.square(taps) / sigma2), 0.0), axis=-1)
    position = tf.range(size, dtype=tf.float32)
    offsets = position[:, None] - position[None, :]
    band = tf.abs(offsets) <= radii[..., None, None]
    weights = tf.where(band, tf.exp(-0.5 * tf.square(offsets) / sigma2[..., None]), 0.0)
    return weights / norm[..., None, None]


def _blur(images: tf.Tensor, sigmas: tf.Tensor, radii: tf.Tensor, max_radius: int) -> tf.Tensor:
    """images [B,H,W,C], σ [k] (or [k,B], one per image) → [k,B,H,W,C], blurred with each σ."""
    shape = tf.shape(images)
    rows = _blur_matrices(sigmas, radii, shape[1], max_radius)
    cols = _blur_matrices(sigmas, radii, shape[2], max_radius)
    if sigmas.shape.rank == 1:
        blurred_rows = tf.einsum("kip,bpqc->kbiqc", rows, images)
        return tf.einsum("kjq,kbiqc->kbijc", cols, blurred_rows)
    blurred_rows = tf.einsum("kbip,bpqc->kbiqc", rows, images)
    return tf.einsum("kbjq,kbiqc->kbijc", cols, blurred_rows)


def _graph_radius(sigma: tf.Tensor) -> tf.Tensor:
    """`_radius` in the graph, on float64 σ (the same rounding as Python's), as float32."""
    return tf.cast(tf.floor(_TRUNCATE * sigma + 0.5), tf.float32)


def blur_path_attributions(
    graph: Graph,
    images: tf.Tensor,
    target: tf.Tensor,
    params: BlurIntegratedGradientsParams,
    steps: tf.Tensor | None = None,
) -> tf.Tensor:
    """Σ_i factor_i · (γ(σ_i) − γ(ahead_i)) ⊙ ∇F(γ(σ_i)), `internal_batch` points at a time.

    As `exporter._attribution.chunked_gradient_sum`, but each point's weight is a tensor
    (the path's direction there), not a scalar: peak memory O(B × internal_batch). Each
    image's levels follow its own m (`steps`, int32 [B]; default the params' steps); the
    levels are computed in float64, as `BlurIntegratedGradientsParams.schedule` does.
    """
    if steps is None:
        steps = tf.fill(tf.shape(target), params.steps)
    top = math.sqrt(params.max_sigma) if params.sqrt else params.max_sigma
    max_radius = _radius(top + params.grad_step)
    count = tf.reduce_max(steps)
    chunk = even_chunk(params.steps, graph.internal_batch)
    loops = (count + chunk - 1) // chunk
    m = tf.cast(steps, tf.float64)[None]  # [1,B]
    targets = tf.tile(target, [chunk])  # copy-major, matching the [k·B] reshape below

    def level(i: tf.Tensor) -> tf.Tensor:
        linear = i * params.max_sigma / m
        return tf.sqrt(linear) if params.sqrt else linear

    def body(step: tf.Tensor, total: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        indices = step * chunk + tf.range(chunk, dtype=tf.int32)
        i = tf.cast(indices, tf.float64)[:, None]  # [k,1]
        valid = i < m  # [k,B]: point i < m_b belongs to image b's path
        i = tf.minimum(i, m - 1)  # padding points repeat the image's last point, weight 0
        sigma = level(i)
        if params.grad_step == 0:
            ahead, factor = level(i + 1), tf.ones_like(sigma)
        else:
            ahead, factor = sigma + params.grad_step, (level(i + 1) - sigma) / params.grad_step
        inputs = _blur(images, tf.cast(sigma, tf.float32), _graph_radius(sigma), max_radius)
        further = _blur(images, tf.cast(ahead, tf.float32), _graph_radius(ahead), max_radius)
        weight = tf.where(valid, tf.cast(factor, tf.float32), 0.0)[:, :, None, None, None]
        shape = tf.shape(inputs)
        flat = tf.reshape(inputs, tf.concat([[-1], shape[2:]], axis=0))
        gradients = tf.reshape(gradient_at(graph.head.logits_fn, flat, targets), shape)
        return step + 1, total + tf.reduce_sum(weight * (inputs - further) * gradients, axis=0)

    _, total = tf.while_loop(
        lambda step, _: step < loops,
        body,
        (tf.constant(0, tf.int32), tf.zeros_like(images)),
        parallel_iterations=1,
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
    request_inputs = (STEPS_INPUT,)

    def explain(
        self,
        graph: Graph,
        images: tf.Tensor,
        target_class: tf.Tensor,
        params: BlurIntegratedGradientsParams,
        request: Mapping[str, tf.Tensor] | None = None,
    ) -> dict[str, tf.Tensor]:
        logits, outputs = graph.clean_pass(images, target_class)
        target = outputs[c.TARGET_CLASS]
        attributions = blur_path_attributions(graph, images, target, params, (request or {}).get(c.STEPS))
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
        request: Mapping[str, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """One eager gradient per blur level, blurs in float64 numpy; the images grouped by
        their own steps (each group's levels from `schedule` at that m)."""
        out = clean_reference(copy, images, target_class)
        target = out["target_class"]
        steps = request_values(request, params, self.request_inputs, len(images), images.shape[1:])[c.STEPS]
        total = np.zeros(images.shape, np.float64)
        for m in np.unique(steps):
            who = np.flatnonzero(steps == m)
            own = dataclasses.replace(params, steps=int(m))
            for sigma, ahead, factor in zip(*own.schedule(), strict=True):
                point = _numpy_blur(images[who], sigma)
                direction = factor * (point - _numpy_blur(images[who], ahead))
                total[who] += direction * copy.gradient(point.astype(np.float32), target[who])
        baseline = _numpy_blur(images, params.sigmas()[-1]).astype(np.float32)
        return self.reference_outputs(out, copy, total, baseline, reduction)
