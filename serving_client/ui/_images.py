"""Uploaded image bytes → what the export's input takes, and what is drawn under the map.

Everything stays in memory: the bytes are decoded with Pillow from a buffer, never a file.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _inputs, render

#: Pictures above this many pixels are refused before decoding (decompression bombs).
MAX_PIXELS = 4096 * 4096

class ImageError(ValueError):
    """An upload that cannot be turned into the model's input; the message is for the page."""


@dataclass(frozen=True)
class Prepared:
    """One uploaded image as drawn (float32 ``[H, W, C]`` in ``[0, 1]``) and as sent."""

    shown: np.ndarray
    sent: Any


def decode(data: bytes, filename: str, *, channels: int | None = None) -> np.ndarray:
    """Decode PNG/JPEG bytes to float32 ``[H, W, C]`` in ``[0, 1]``, as :func:`render.load_image`.

    Args:
        data: the encoded picture.
        filename: the upload's name, for messages only.
        channels: 1 or 3 to convert to (Pillow's RGB → L for gray); ``None`` keeps gray
            pictures gray and gives RGB otherwise.

    Returns:
        float32 ``[H, W, C]``.

    Raises:
        ImageError: if the bytes are no picture Pillow reads, or it has too many pixels.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as picture:
            width, height = picture.size
            if width * height > MAX_PIXELS:
                raise ImageError(
                    f"{filename} is {width}x{height} pixels; the viewer decodes pictures of at "
                    f"most {MAX_PIXELS} pixels."
                )
            if picture.format not in ("PNG", "JPEG"):
                raise ImageError(
                    f"{filename} is a {picture.format or 'unknown'} picture; the viewer takes "
                    "PNG or JPEG."
                )
            picture.load()
            if channels is None:
                gray = picture.mode in ("1", "L", "LA", "I", "I;16", "F")
                channels = 1 if gray else 3
            # Pillow's own conversions, as render.load_image reads a file.
            converted = picture.convert("L" if channels == 1 else "RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as error:
        raise ImageError(f"{filename} is not a PNG or JPEG picture the viewer can read ({error}).") from error
    array = np.asarray(converted, dtype=np.float32) / 255.0
    return array[..., np.newaxis] if array.ndim == 2 else array


def prepare(
    data: bytes,
    filename: str,
    *,
    input_format: str,
    expected_shape: tuple[int | None, ...] | None,
    model: str,
) -> Prepared:
    """Turn an upload into the export's input, refusing a picture of the wrong size.

    float32 exports get ``[0, 1]`` pixels, uint8 exports the 0..255 pixels, image_bytes exports
    the uploaded bytes unchanged (the graph decodes and resizes them). Channels are converted
    as :func:`render.load_image` does; the size is never changed silently, since a resized
    picture is not the one the user looked at.

    Args:
        data: the encoded picture.
        filename: the upload's name, for messages.
        input_format: one of :data:`serving_client.INPUT_FORMATS`.
        expected_shape: ``(H, W, C)`` of one image of the export's input, ``None`` entries
            where the export accepts any size; ``None`` when unknown.
        model: the model name, for messages.

    Returns:
        The image as drawn and as sent.

    Raises:
        ImageError: for an unreadable picture or one that does not fit the model's input.
    """
    if input_format == _inputs.IMAGE_BYTES:
        return Prepared(decode(data, filename), data)
    channels = None
    if expected_shape is not None and len(expected_shape) == 3 and expected_shape[2] in (1, 3):
        channels = expected_shape[2]
    shown = decode(data, filename, channels=channels)
    if expected_shape is not None and len(expected_shape) == 3:
        want_h, want_w = expected_shape[0], expected_shape[1]
        have_h, have_w = shown.shape[:2]
        if (want_h is not None and want_h != have_h) or (want_w is not None and want_w != have_w):
            wanted = f"{'any' if want_w is None else want_w}x{'any' if want_h is None else want_h}"
            raise ImageError(
                f"{filename} is {have_w}x{have_h} pixels; model {model!r} takes {wanted} "
                f"(width x height) images. Resize the picture to {wanted} and upload it again."
            )
    if input_format == _inputs.UINT8:
        return Prepared(shown, np.rint(shown.astype(np.float64) * 255.0).astype(np.uint8))
    return Prepared(shown, shown)


def png_bytes(array: np.ndarray) -> bytes:
    """Encode ``[H, W]``, ``[H, W, 1]`` or ``[H, W, 3]`` (uint8, or float in ``[0, 1]``) as PNG."""
    from PIL import Image

    pixels = np.asarray(array)
    if pixels.dtype != np.uint8:
        pixels = np.rint(np.clip(pixels.astype(np.float32), 0.0, 1.0) * 255).astype(np.uint8)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def shown_at(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """The picture at the map's size (image_bytes exports resize in the graph)."""
    if image.shape[:2] == (height, width):
        return image
    return render._resize(image, height, width)
