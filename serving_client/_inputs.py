"""Turn what users pass (images, target classes) into the tensors the signatures expect.

The ``images`` input of a saliency-serving export has one of three formats, read from the
signature's dtype: ``float32`` (pixels as the model takes them), ``uint8`` (pixels 0..255,
scaled in the graph) or ``image_bytes`` (``DT_STRING``: one encoded PNG/JPEG/BMP per image,
decoded and resized in the graph).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._codec import dtype_name
from .contract import FLOAT32, IMAGE_BYTES, INPUT_FORMAT_DTYPES, INPUT_FORMATS, UINT8

__all__ = [
    "FLOAT32",
    "IMAGE_BYTES",
    "INPUT_FORMATS",
    "UINT8",
    "as_image_batch",
    "as_target_class",
    "input_format_of",
]

_INT32 = np.iinfo(np.int32)

# TensorSpec.dtype (the client's dtype names) → input format, from the contract's dtypes.
_FORMAT_OF_DTYPE = {dtype_name(dtype): name for name, dtype in INPUT_FORMAT_DTYPES.items()}

# Leading bytes of the encodings tf.io.decode_image reads (the export may refuse some of them,
# e.g. GIF; the server says so). Anything else is not an encoded image at all.
_SIGNATURES: tuple[tuple[str, bytes], ...] = (
    ("PNG", b"\x89PNG\r\n\x1a\n"),
    ("JPEG", b"\xff\xd8\xff"),
    ("BMP", b"BM"),
    ("GIF", b"GIF8"),
)
# PIL modes that PNG stores as 8-bit samples the graph's decoder reads without loss.
_PNG_MODES = ("1", "L", "LA", "P", "RGB", "RGBA")
_PNG_MODE_OF_CHANNELS = {1: "L", 3: "RGB", 4: "RGBA"}


def input_format_of(dtype: str, signature: str) -> str:
    """The input format of a signature whose ``images`` input has client dtype ``dtype``.

    Args:
        dtype: :attr:`TensorSpec.dtype` of the ``images`` input (``"float32"``, ...).
        signature: the signature name, for the message.

    Returns:
        One of :data:`INPUT_FORMATS`.

    Raises:
        ValueError: for a dtype the typed client cannot send images as.
    """
    input_format = _FORMAT_OF_DTYPE.get(dtype)
    if input_format is None:
        raise ValueError(
            f"Signature {signature!r} takes 'images' of dtype {dtype}; the typed client sends "
            "float32, uint8 or string (encoded images). Call raw_predict with arrays of that "
            "dtype instead."
        )
    return input_format


def as_image_batch(images: Any, input_format: str = FLOAT32) -> np.ndarray:
    """Return ``images`` as the ``images`` tensor of an export of ``input_format``.

    Args:
        images: for ``float32``: one image ``[H, W, C]`` (a batch of one is added) or a batch
            ``[B, H, W, C]``, of any numeric dtype, sent as they are (scale them as the model
            expects). For ``uint8``: the same shapes, of pixel values 0..255: uint8 arrays, or
            integer/float arrays whose values are integers in that range (nothing is rounded
            or clipped). For ``image_bytes``: a file path, ``bytes`` of an encoded image, a
            PIL image or a pixel array ``[H, W, C]``, or a sequence of those, or a batch array
            ``[B, H, W, C]``; arrays and PIL images are PNG-encoded (lossless), bytes and
            files are sent as they are.
        input_format: one of :data:`INPUT_FORMATS`.

    Returns:
        float32 or uint8 C-contiguous ``[B, H, W, C]``, or an object array ``[B]`` of
        ``bytes`` for ``image_bytes``.

    Raises:
        TypeError: if the values are of a kind the format cannot take (e.g. strings for a
            float32 export).
        ValueError: if the rank is wrong, the batch is empty, uint8 pixels are out of range
            or not integers, or bytes are not an encoded image.
        FileNotFoundError: for an ``image_bytes`` path that does not exist.
    """
    if input_format == IMAGE_BYTES:
        return _as_encoded_batch(images)
    if input_format not in (FLOAT32, UINT8):
        raise ValueError(f"input_format must be one of {', '.join(INPUT_FORMATS)}; got {input_format!r}.")
    array = _as_pixel_array(images, input_format)
    if array.ndim == 3:
        array = array[np.newaxis]
    if array.ndim != 4:
        raise ValueError(
            f"images must be [H, W, C] or [batch, H, W, C]; got shape {array.shape}."
        )
    if array.shape[0] == 0:
        raise ValueError("images must hold at least one image; got an empty batch.")
    if input_format == UINT8:
        return np.ascontiguousarray(_as_uint8(array, "images"))
    return np.ascontiguousarray(array, dtype=np.float32)


def _as_pixel_array(images: Any, input_format: str) -> np.ndarray:
    if isinstance(images, (str, bytes, os.PathLike)):
        raise TypeError(
            f"This signature takes {input_format} pixel arrays, not a file or encoded bytes; "
            f"got {type(images).__name__}. Load files with serving_client.render.load_image."
        )
    array = np.asarray(images)
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"images must be numeric (they are sent as {input_format}); got an array of dtype "
            f"{array.dtype}."
        )
    return array


def _as_uint8(array: np.ndarray, what: str) -> np.ndarray:
    """``array`` as uint8, refusing values a cast would change (no silent wrap or rounding)."""
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind == "b":
        raise TypeError(f"{what} must be uint8 pixels 0..255; got a bool array.")
    if array.size:
        low, high = array.min(), array.max()
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise ValueError(f"{what} must be uint8 pixels 0..255; got non-finite values (NaN or inf).")
        if low < 0 or high > 255:
            hint = " (scaled floats? this export takes pixels 0..255)" if high <= 1.0 else ""
            raise ValueError(
                f"{what} must be uint8 pixels 0..255; got values in [{low}, {high}] of dtype "
                f"{array.dtype}{hint}."
            )
        if array.dtype.kind == "f":
            fractional = array[array != np.floor(array)]
            if fractional.size:
                raise ValueError(
                    f"{what} must be uint8 pixels 0..255 (whole numbers); got non-integral "
                    f"values such as {fractional.flat[0].item()!r} (dtype {array.dtype}). Round them "
                    "yourself, or pass uint8 pixels, if that is what you mean."
                )
    return array.astype(np.uint8)


def _as_encoded_batch(images: Any) -> np.ndarray:
    if isinstance(images, np.ndarray) and images.dtype.kind in "biuf":
        if images.ndim == 3:
            items: list[Any] = [images]
        elif images.ndim == 4:
            items = list(images)
        else:
            raise ValueError(
                f"Pixel arrays for an image_bytes signature must be [H, W, C] or "
                f"[batch, H, W, C]; got shape {images.shape}."
            )
    elif isinstance(images, (str, bytes, bytearray, memoryview, os.PathLike)) or _is_pil(images):
        items = [images]
    elif isinstance(images, (Sequence, np.ndarray)):
        items = list(images)
    else:
        raise TypeError(
            "An image_bytes signature takes file paths, encoded image bytes, PIL images or "
            f"pixel arrays (or a sequence of them); got {type(images).__name__}."
        )
    if not items:
        raise ValueError("images must hold at least one image; got an empty batch.")
    encoded = np.empty(len(items), dtype=object)
    encoded[:] = [_encoded(item, index) for index, item in enumerate(items)]
    return encoded


def _encoded(item: Any, index: int) -> bytes:
    what = f"image {index}"
    if isinstance(item, (str, os.PathLike)):
        path = Path(item)
        if not path.is_file():
            raise FileNotFoundError(f"Image file {str(path)!r} ({what}) does not exist.")
        return _checked_bytes(path.read_bytes(), f"{what} ({str(path)!r})")
    if isinstance(item, (bytes, bytearray, memoryview, np.bytes_)):
        return _checked_bytes(bytes(item), what)
    if _is_pil(item):
        if item.mode not in _PNG_MODES:
            raise ValueError(
                f"{what} is a PIL image of mode {item.mode!r}; an image_bytes signature takes "
                f"8-bit images ({', '.join(_PNG_MODES)}). Convert it, e.g. image.convert('RGB')."
            )
        return _png(item)
    array = np.asarray(item)
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"{what} must be a file path, encoded image bytes, a PIL image or a pixel array; "
            f"got {type(item).__name__} (dtype {array.dtype})."
        )
    if array.ndim != 3 or array.shape[2] not in _PNG_MODE_OF_CHANNELS:
        raise ValueError(
            f"{what} must be [H, W, C] pixels with C 1, 3 or 4 to encode as PNG; got shape "
            f"{array.shape}."
        )
    if 0 in array.shape:
        raise ValueError(f"{what} has no pixels; got shape {array.shape}.")
    pixels = _as_uint8(array, what)
    from PIL import Image  # noqa: PLC0415 - only the image_bytes path needs Pillow

    channels = pixels.shape[2]
    image = Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels, _PNG_MODE_OF_CHANNELS[channels])
    return _png(image)


def _png(image: Any) -> bytes:
    buffer = io.BytesIO()
    # Level 1: PNG is lossless at any level; the request is sent once, so favour speed.
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _checked_bytes(data: bytes, what: str) -> bytes:
    if any(data.startswith(magic) for _, magic in _SIGNATURES) or (
        data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    ):
        return data
    known = ", ".join(name for name, _ in _SIGNATURES) + ", WebP"
    raise ValueError(
        f"{what} is not an encoded image: expected {known} data, got {len(data)} bytes "
        f"starting {data[:8]!r}."
    )


def _is_pil(value: Any) -> bool:
    # Without importing Pillow when the user has not: a PIL image's class comes from PIL.
    module = type(value).__module__ or ""
    return module.startswith("PIL.") and hasattr(value, "save") and hasattr(value, "mode")


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
