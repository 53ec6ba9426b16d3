"""Similarity of two saliency maps: Spearman rank correlation of |values|, and SSIM.

Pure numpy (no scipy), so the randomization test can be reproduced anywhere.
"""

from __future__ import annotations

import numpy as np

__all__ = ["rankdata", "spearman_abs", "ssim"]


def rankdata(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of a 1-D array, ties getting their average rank (scipy's "average").

    Args:
        values: 1-D array.

    Returns:
        float64 ranks, same length.
    """
    values = np.asarray(values).ravel()
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    # Start index of each run of equal values; every member gets the run's mean rank.
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    mean_ranks = (starts + ends + 1) / 2.0  # ranks start+1 .. end, averaged
    ranks = np.empty(len(values), np.float64)
    ranks[order] = np.repeat(mean_ranks, ends - starts)
    return ranks


def spearman_abs(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of |a| and |b| (flattened), as in Adebayo et al. 2018.

    The absolute value is taken because a sign flip of an attribution is not a change in
    what the map points at.

    Args:
        a: A map (any shape).
        b: A map of the same size.

    Returns:
        The Pearson correlation of the average ranks, in [-1, 1]. When a map is constant
        its ranks carry no order: two constant maps give 1.0 (they are the same ordering,
        none), one constant map against a varying one gives 0.0. Never NaN.

    Raises:
        ValueError: If the sizes differ or a map is empty.
    """
    a = np.abs(np.asarray(a, np.float64)).ravel()
    b = np.abs(np.asarray(b, np.float64)).ravel()
    if a.size != b.size or a.size == 0:
        raise ValueError(f"Maps must be non-empty and the same size; received {a.size} and {b.size}.")
    ra = rankdata(a) - (a.size + 1) / 2.0
    rb = rankdata(b) - (b.size + 1) / 2.0
    na, nb = np.sqrt((ra * ra).sum()), np.sqrt((rb * rb).sum())
    if na == 0 or nb == 0:
        return 1.0 if na == nb else 0.0
    return float(np.clip((ra * rb).sum() / (na * nb), -1.0, 1.0))


def _window_means(image: np.ndarray, size: int) -> np.ndarray:
    windows = np.lib.stride_tricks.sliding_window_view(image, (size, size))
    return windows.mean(axis=(-2, -1))


def ssim(a: np.ndarray, b: np.ndarray, *, data_range: float = 1.0, window: int = 7) -> float:
    """Structural similarity of two 2-D maps (Wang et al. 2004).

    Computed like scikit-image's default `structural_similarity`: a uniform
    `window`×`window` window over every position where it fits (no padding), sample
    covariances, K1 = 0.01, K2 = 0.03, averaged over the positions.

    Args:
        a: [H, W] map.
        b: [H, W] map.
        data_range: The value range of the maps (1 for saliency maps in [0, 1]).
        window: Odd window size; shrunk to the map's smaller side if that is smaller.

    Returns:
        The mean SSIM, 1.0 for identical maps (constant ones included).

    Raises:
        ValueError: If the shapes differ or are not 2-D.
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"Expected two 2-D maps of the same shape; received {a.shape} and {b.shape}.")
    size = min(window, *a.shape)
    if size < 2:
        raise ValueError(f"Maps must be at least 2×2 for SSIM; received {a.shape}.")
    n = size * size
    correction = n / (n - 1)  # sample (not population) covariance, as scikit-image
    mu_a, mu_b = _window_means(a, size), _window_means(b, size)
    var_a = correction * (_window_means(a * a, size) - mu_a * mu_a)
    var_b = correction * (_window_means(b * b, size) - mu_b * mu_b)
    cov = correction * (_window_means(a * b, size) - mu_a * mu_b)
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    numerator = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    denominator = (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)
    return float((numerator / denominator).mean())
