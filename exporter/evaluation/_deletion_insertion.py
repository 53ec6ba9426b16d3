"""Deletion and insertion curves (Petsiuk et al. 2018, RISE), and their normalized AUC.

Deletion removes pixels, most salient first, by setting them to a baseline (0): a map
that points at the evidence makes the target probability fall fast (low AUC is good).
Insertion adds pixels, most salient first, onto a blurred copy of the image: the
probability should rise fast (high AUC is good). A random pixel order is the yardstick.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["auc", "blur", "perturbation_curves", "random_order", "saliency_order"]

#: images [N,H,W,C] → probabilities [N,K].
PredictFn = Callable[[np.ndarray], np.ndarray]


def saliency_order(maps: np.ndarray, seed: int = 0) -> np.ndarray:
    """Pixel indices [B, H·W], most salient first; ties in random (seeded) order.

    Ties are common (a zero-gradient background, a constant map); a raster-order
    tie-break would sweep the image top to bottom and look like a real ordering.
    """
    flat = np.asarray(maps, np.float64).reshape(len(maps), -1)
    tiebreak = np.random.default_rng(seed).random(flat.shape)
    return np.lexsort((tiebreak, -flat), axis=-1)


def random_order(batch: int, pixels: int, seed: int = 0) -> np.ndarray:
    """A random pixel order per image [batch, pixels] (seeded)."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(pixels) for _ in range(batch)])


def _gaussian_kernel(sigma: float) -> np.ndarray:
    radius = max(1, int(round(3 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur over H and W of [B,H,W,C] (edges reflected)."""
    kernel = _gaussian_kernel(sigma)
    radius = len(kernel) // 2
    out = np.asarray(images, np.float64)
    for axis in (1, 2):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="reflect" if out.shape[axis] > radius else "edge")
        windows = np.lib.stride_tricks.sliding_window_view(padded, len(kernel), axis=axis)
        out = windows @ kernel
    return out.astype(np.float32)


def _curves(
    predict: PredictFn,
    source: np.ndarray,
    destination: np.ndarray,
    target: np.ndarray,
    order: np.ndarray,
    steps: int,
    chunk: int,
) -> np.ndarray:
    """Target probability as pixels switch from `source` to `destination`, in `order`.

    At step i of 0..steps the first round(i·P/steps) pixels of `order` (P = H·W; all
    channels of a pixel together) take `destination`'s values, the rest `source`'s.
    """
    batch, height, width, channels = source.shape
    pixels = height * width
    counts = np.round(np.linspace(0, pixels, steps + 1)).astype(int)
    # rank[b, p]: position of pixel p in image b's order; switched once rank < count.
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(pixels), order.shape), axis=-1)
    curves = np.empty((batch, steps + 1), np.float64)
    per_call = max(1, chunk // (steps + 1))  # images per predict call, all their steps at once
    for lo in range(0, batch, per_call):
        hi = min(batch, lo + per_call)
        masks = (rank[lo:hi, None, :] < counts[None, :, None]).reshape(hi - lo, steps + 1, height, width, 1)
        mixed = np.where(masks, destination[lo:hi, None], source[lo:hi, None])
        probabilities = predict(mixed.reshape(-1, height, width, channels).astype(np.float32))
        probabilities = probabilities.reshape(hi - lo, steps + 1, -1)
        curves[lo:hi] = probabilities[np.arange(hi - lo), :, target[lo:hi]]
    return curves


def perturbation_curves(
    predict: PredictFn,
    images: np.ndarray,
    target: np.ndarray,
    order: np.ndarray,
    *,
    steps: int,
    blur_sigma: float,
    baseline: float = 0.0,
    chunk: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """Deletion and insertion curves of the target probability, for one pixel order.

    Args:
        predict: images [N,H,W,C] → probabilities [N,K].
        images: [B,H,W,C].
        target: int [B], the class whose probability is tracked.
        order: [B, H·W] pixel indices, first removed/inserted first.
        steps: Number of steps; curves have steps + 1 points (0 % … 100 % of pixels).
        blur_sigma: σ in pixels of the blurred image insertion starts from.
        baseline: The value deleted pixels take.
        chunk: Perturbed images per `predict` call (bounds memory).

    Returns:
        (deletion, insertion), each float64 [B, steps + 1].
    """
    images = np.asarray(images, np.float32)
    target = np.asarray(target, np.int64)
    deleted = np.full_like(images, baseline)
    deletion = _curves(predict, images, deleted, target, order, steps, chunk)
    insertion = _curves(predict, blur(images, blur_sigma), images, target, order, steps, chunk)
    return deletion, insertion


def auc(curves: np.ndarray) -> np.ndarray:
    """Normalized area under each curve [B, steps+1]: trapezoid over x = fraction in [0, 1]."""
    curves = np.asarray(curves, np.float64)
    steps = curves.shape[-1] - 1
    return (curves[..., 1:] + curves[..., :-1]).sum(axis=-1) / (2.0 * steps)
