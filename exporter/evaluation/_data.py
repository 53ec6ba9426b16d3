"""Evaluation images from `--data`: a `.npy` file of model inputs the user gives.

No data set is built in: callers pass their own held-out images (an array from Python, a
`.npy` file from the CLI). The MNIST example writes its test digits as such a file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from exporter._errors import ConfigError

__all__ = ["load_images", "prepare_images"]


def load_images(spec: str | Path) -> np.ndarray:
    """Loads evaluation images.

    Args:
        spec: A `.npy` file holding a numeric array (no pickles).

    Returns:
        float32 images as stored ([N,H,W,C], or [N,H,W]).

    Raises:
        ConfigError: Not a `.npy` path, a missing or unreadable file, or not a numeric array.
    """
    path = Path(spec)
    if path.suffix != ".npy":
        raise ConfigError(
            f"Evaluation data must be a .npy file of images [N,H,W,C] (from Python, pass the "
            f"array itself); received {str(spec)!r}."
        )
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ConfigError(f"Evaluation data {path} does not exist.") from None
    except ValueError as error:
        raise ConfigError(f"Evaluation data {path} is not a plain numpy array: {error}") from None
    if not np.issubdtype(array.dtype, np.number):
        raise ConfigError(f"Evaluation data {path} must be numeric; received dtype {array.dtype}.")
    return array.astype(np.float32, copy=False)


def prepare_images(images: np.ndarray, input_shape: tuple[int, int, int], num_images: int) -> np.ndarray:
    """The first `num_images` images, checked against the model's input shape.

    A [N,H,W] array is accepted for one-channel models.

    Raises:
        ConfigError: Wrong shape, no images, or non-finite values.
    """
    images = np.asarray(images, np.float32)
    if images.ndim == 3 and input_shape[-1] == 1:
        images = images[..., None]
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(input_shape):
        raise ConfigError(
            f"Evaluation images must be [N, {', '.join(map(str, input_shape))}] to match the "
            f"export's input; received shape {list(images.shape)}."
        )
    if len(images) == 0:
        raise ConfigError("No evaluation images: the array is empty.")
    images = images[:num_images]
    if not np.isfinite(images).all():
        raise ConfigError("Evaluation images must be finite (received NaN or Inf).")
    return images
