"""A deterministic synthetic RGB scene for XRAI tests: segmentation needs real structure."""

from __future__ import annotations

import numpy as np


def synthetic_scene(size: int = 64, seed: int = 0) -> np.ndarray:
    """float32 [size, size, 3] in [0, 1]: a sky-to-sand gradient, a red disc, a green square,
    a blue bar and mild noise, so Felzenszwalb finds a handful of segments at every scale."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = np.empty((size, size, 3))
    image[...] = np.array([0.2, 0.4, 0.7]) * (1 - yy[..., None]) + np.array([0.9, 0.8, 0.5]) * yy[..., None]
    image[(yy - 0.35) ** 2 + (xx - 0.3) ** 2 < 0.04] = [0.9, 0.1, 0.1]
    image[(abs(yy - 0.7) < 0.15) & (abs(xx - 0.7) < 0.12)] = [0.1, 0.7, 0.2]
    image[(abs(yy - 0.15) < 0.05) & (xx > 0.55)] = [0.1, 0.1, 0.8]
    image += rng.normal(0, 0.02, image.shape)
    return image.clip(0, 1).astype(np.float32)
