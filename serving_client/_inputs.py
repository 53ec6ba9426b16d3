"""Turn what users pass (images, target classes) into the tensors the signatures expect."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

_INT32 = np.iinfo(np.int32)


def as_image_batch(images: Any) -> np.ndarray:
    """Return ``images`` as a float32 ``[batch, H, W, C]`` array.

    Args:
        images: one image ``[H, W, C]`` (a batch of one is added) or a batch ``[B, H, W, C]``,
            of any numeric dtype. Values are sent as they are: scale them as the model expects.

    Returns:
        A C-contiguous float32 array of rank 4.

    Raises:
        TypeError: if the values are not numeric.
        ValueError: if the rank is not 3 or 4, or the batch is empty.
    """
    array = np.asarray(images)
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"images must be numeric (they are sent as float32); got an array of dtype "
            f"{array.dtype}."
        )
    if array.ndim == 3:
        array = array[np.newaxis]
    if array.ndim != 4:
        raise ValueError(
            f"images must be [H, W, C] or [batch, H, W, C]; got shape {array.shape}."
        )
    if array.shape[0] == 0:
        raise ValueError("images must hold at least one image; got an empty batch.")
    return np.ascontiguousarray(array, dtype=np.float32)


def as_target_class(target_class: int | Sequence[int] | np.ndarray, batch: int) -> np.ndarray:
    """Return ``target_class`` as an int32 ``[batch]`` array.

    Args:
        target_class: one class index for the whole batch, or one per image (a sequence of
            length 1 is broadcast). ``-1`` asks for the predicted class.
        batch: the number of images.

    Returns:
        An int32 array of shape ``[batch]``.

    Raises:
        TypeError: if the values are not integers.
        ValueError: if the length is neither 1 nor ``batch``, or a value is outside int32.
    """
    array = np.asarray(target_class)
    if array.dtype.kind not in "iu":
        raise TypeError(
            f"target_class must be an int or a sequence of ints; got {target_class!r} "
            f"(dtype {array.dtype})."
        )
    array = array.reshape(-1)
    if array.size not in (1, batch):
        raise ValueError(
            f"target_class must hold 1 or {batch} values (one per image); got {array.size}."
        )
    if array.size and (array.min() < _INT32.min or array.max() > _INT32.max):
        raise ValueError(f"target_class values must fit in int32; got {array.tolist()}.")
    return np.broadcast_to(array.astype(np.int32), (batch,)).copy()
