"""Records read from the input, and their decoding into what the signature's ``images`` take.

An image fits a float32 or uint8 export only when it decodes to the export's height and width:
those exports have no resize rule of their own, so resizing here would explain a picture the
model was never meant to see. Such images go to the dead-letter output with the reason.
``image_bytes`` exports decode and resize in the graph; their bytes are only checked to be a
picture Pillow can open, so one corrupt file cannot fail a whole batch.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np

from ._model import FLOAT32, IMAGE_BYTES, UINT8, ExplainInput, ExportSignature

__all__ = ["DecodeError", "Record", "content_id", "decode"]


@dataclass(frozen=True)
class Record:
    """One input image before decoding.

    Attributes:
        id: a deterministic id: the file's path, a TFRecord's id feature, or a content hash.
        source: where it came from (file path or TFRecord file).
        data: the encoded image bytes.
        label: the label feature (TFRecords with ``--label_feature``), else ``None``.
    """

    id: str
    source: str
    data: bytes
    label: int | None = None


class DecodeError(ValueError):
    """An image that cannot be turned into the export's input; the message says why."""


def content_id(data: bytes) -> str:
    """``sha256:<hex>`` of an image's bytes: the id of a record that carries none."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def decode(record: Record, export: ExportSignature) -> np.ndarray | bytes:
    """The ``images`` row for ``record``: float32 ``[H, W, C]`` in ``[0, 1]`` (pixel / 255, as
    ``serving_client.render.load_image``), uint8 ``[H, W, C]``, or the bytes for image_bytes.

    Raises:
        DecodeError: corrupt or unreadable bytes, a channel count that cannot be converted, or
            a height and width other than the export's.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(record.data)) as picture:
            picture.load()
            if export.input_format == IMAGE_BYTES:
                return record.data
            height, width, channels = export.image_shape
            if (picture.height, picture.width) != (height, width):
                raise DecodeError(
                    f"image is {picture.height}x{picture.width} (HxW); the export's "
                    f"{export.input_format} input takes {height}x{width} and has no resize rule "
                    "(an image_bytes export resizes in the graph)"
                )
            if channels not in (1, 3):
                raise DecodeError(
                    f"the export takes {channels} channels; images decode to 1 (L) or 3 (RGB)"
                )
            mode = "L" if channels == 1 else "RGB"
            # The core image is freed when the file closes, so the pixels are read here; an
            # image already in the export's mode is read as it is (convert would copy it).
            pixels = np.asarray(picture if picture.mode == mode else picture.convert(mode), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        if isinstance(error, DecodeError):
            raise
        raise DecodeError(f"cannot decode the bytes as an image: {error}") from error
    if pixels.ndim == 2:
        pixels = pixels[..., np.newaxis]
    if export.input_format == UINT8:
        return np.ascontiguousarray(pixels)
    if export.input_format == FLOAT32:
        return pixels.astype(np.float32) / np.float32(255.0)
    raise DecodeError(f"unknown input format {export.input_format!r}")


def explain_input(record: Record, export: ExportSignature, target_class: int | None) -> ExplainInput:
    """Decode ``record`` and pick its class to explain: ``target_class``, else its label, else
    the contract's default (−1: the predicted class)."""
    if target_class is not None:
        target = target_class
    elif record.label is not None:
        target = record.label
    else:
        from serving_client import contract

        target = contract.TARGET_CLASS_DEFAULT
    return ExplainInput(decode(record, export), int(target))
