"""Input formats of the signatures' `images`: float32 pixels, uint8 pixels, or encoded images.

Whatever the format, the model sees float32 [B,H,W,C] and every gradient is taken with
respect to that float image (after conversion/decoding), so the maps are those of the
float path on the same pixels. For uint8 and image bytes:

    model_input = pixel * scale + offset          (pixel in 0..255)

For image bytes, nothing is decoded before every image has passed the guard: at most
`input.max_image_bytes` encoded bytes, a format whose header states the decoded size
(PNG IHDR, JPEG SOF, BMP info header), and a declared width × height of at most
`input.max_pixels`. A decompression bomb (a small file declaring a huge image) is thus
refused with INVALID_ARGUMENT by the graph itself, on stock TF Serving too. GIF and WebP
are refused: a GIF's frames each declare their own size and the decoder reads all of
them even when only the first is used, and TF 2.14 (the oldest runtime supported)
cannot decode WebP.

Only the graph side (TensorFlow) and the numpy encoding of samples for verification and
warmup live here.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import tensorflow as tf

from exporter._config import InputConfig
from exporter._errors import UnsupportedModelError
from exporter._limits import default_max_image_bytes, default_max_pixels
from serving_client import contract as c
from serving_client.contract import FLOAT32, IMAGE_BYTES, UINT8

__all__ = [
    "ACCEPTED_FORMATS",
    "ImageLimits",
    "decode_error_message",
    "encode_samples",
    "image_limits",
    "images_spec",
    "to_model_input",
]

# Leading bytes by which `tf.io.decode_image` tells formats apart (its ClassifyFileFormat).
_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"
_GIF = b"GIF8"
_BMP = b"BM"
_RIFF = b"RIFF"

#: Formats the guard can size from their header, hence decodes.
ACCEPTED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "BMP")

decode_error_message = (
    "images could not be decoded: each element must be the bytes of a PNG, JPEG or BMP "
    "image; received bytes that are none of these (per image, 0 = not an image):"
)

# Bytes of each image's header the guard reads (PNG IHDR ends at 24, BMP sizes at 26).
_HEADER = 32


@dataclasses.dataclass(frozen=True)
class ImageLimits:
    """The image_bytes guard's limits, resolved for one model.

    Attributes:
        max_pixels: Largest declared width × height.
        max_image_bytes: Largest encoded image.
    """

    max_pixels: int
    max_image_bytes: int

    def describe_pixels(self) -> str:
        """`1048576 pixels (1024×1024)`: the limit as clients read it."""
        side = math.isqrt(self.max_pixels)
        square = f" ({side}×{side})" if side * side == self.max_pixels else ""
        return f"{self.max_pixels} pixels{square}"

    def report(self) -> dict[str, object]:
        """The `limits.input` section of the export report."""
        return {
            "max_pixels": self.max_pixels,
            "max_image_bytes": self.max_image_bytes,
            "accepted_formats": list(ACCEPTED_FORMATS),
        }


def image_limits(config: InputConfig, input_shape: tuple[int, int, int]) -> ImageLimits | None:
    """The guard's limits for image_bytes (configured or defaulted); None for other formats."""
    if config.format != IMAGE_BYTES:
        return None
    return _bytes_limits(config, input_shape)


def _bytes_limits(config: InputConfig, input_shape: tuple[int, int, int]) -> ImageLimits:
    max_pixels = config.max_pixels or default_max_pixels(input_shape)
    return ImageLimits(max_pixels, config.max_image_bytes or default_max_image_bytes(max_pixels))


def images_spec(config: InputConfig, input_shape: tuple[int, int, int]) -> tf.TensorSpec:
    """The `images` input of every signature for this format.

    Raises:
        UnsupportedModelError: image_bytes for a model whose channel count no image
            format has (decoders give 1, 3 or 4 channels).
    """
    if config.format == IMAGE_BYTES:
        if input_shape[-1] not in (1, 3, 4):
            raise UnsupportedModelError(
                f"input.format image_bytes decodes images to 1 (grayscale), 3 (RGB) or 4 (RGBA) "
                f"channels; the model takes {input_shape[-1]}. Use the uint8 or float32 format."
            )
        return tf.TensorSpec([None], tf.string, name=c.IMAGES)
    dtype = tf.uint8 if config.format == UINT8 else tf.float32
    return tf.TensorSpec([None, *input_shape], dtype, name=c.IMAGES)


def _decode_one(data: tf.Tensor, input_shape: tuple[int, int, int]) -> tf.Tensor:
    height, width, channels = input_shape
    image = tf.io.decode_image(data, channels=channels, dtype=tf.uint8, expand_animations=False)
    same = tf.reduce_all(tf.equal(tf.shape(image)[:2], [height, width]))
    # Bilinear, no aspect preservation; an image of the right size is passed through as is.
    # Resized from the uint8 pixels (the kernel computes in float): no full-size float copy.
    resized = tf.cond(
        same,
        lambda: tf.cast(image, tf.float32),
        lambda: tf.image.resize(image, [height, width], method="bilinear"),
    )
    return tf.ensure_shape(resized, input_shape)


def _message(*parts: str | tf.Tensor) -> tf.Tensor:
    return tf.strings.join([p if isinstance(p, str) else tf.strings.as_string(p) for p in parts])


def _then(check: tf.Operation, images: tf.Tensor) -> tf.Tensor:
    # Each check depends on the previous one, so the first rule broken is the one reported.
    with tf.control_dependencies([check]):
        return tf.identity(images)


def _first(bad: tf.Tensor) -> tf.Tensor:
    # Index of the first True; a trailing sentinel keeps an empty batch valid (the message's
    # data is computed even when the check passes).
    return tf.argmax(tf.concat([tf.cast(bad, tf.int32), [1]], 0), output_type=tf.int64)


def _at(values: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    # values[index], where index may be the sentinel position one past the end.
    return tf.gather(tf.concat([values, tf.zeros([1], values.dtype)], 0), index)


def declared_sizes(images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Graph ops: each image's format and declared width, height from its header only.

    Args:
        images: tf.string [B].

    Returns:
        (kind int32 [B]: 0 none, 1 PNG, 2 JPEG, 3 BMP, 4 GIF, 5 WebP; width, height
        int64 [B], −1 where a PNG has no IHDR first, 0 for the other kinds).
    """
    # The first bytes of each image, zero-padded: short or empty strings are fine.
    head = tf.cast(tf.io.decode_raw(images, tf.uint8, fixed_length=_HEADER), tf.int64)

    def starts(magic: bytes) -> tf.Tensor:
        return tf.equal(tf.strings.substr(images, 0, len(magic)), magic)

    def at(offset: int, magic: bytes) -> tf.Tensor:
        return tf.reduce_all(tf.equal(head[:, offset : offset + len(magic)], list(magic)), axis=1)

    def big_endian(offset: int) -> tf.Tensor:
        return sum(head[:, offset + i] * (1 << (8 * (3 - i))) for i in range(4))

    def little_endian_signed(offset: int) -> tf.Tensor:
        value = sum(head[:, offset + i] * (1 << (8 * i)) for i in range(4))
        return tf.where(value >= 1 << 31, value - (1 << 32), value)

    is_jpeg, is_png, is_gif, is_bmp = starts(_JPEG), starts(_PNG), starts(_GIF), starts(_BMP)
    is_webp = tf.logical_and(starts(_RIFF), at(8, b"WEBP"))
    kind = tf.zeros_like(images, tf.int32)
    # The decoder's order of precedence (the prefixes exclude each other anyway).
    for code, is_kind in ((5, is_webp), (3, is_bmp), (4, is_gif), (1, is_png), (2, is_jpeg)):
        kind = tf.where(is_kind, code, kind)

    ihdr = at(12, b"IHDR")
    png_w = tf.where(ihdr, big_endian(16), -1)
    png_h = tf.where(ihdr, big_endian(20), -1)
    # BMP: int32 width at 18, height at 22 (negative for top-down rows), as TF's decoder reads them.
    bmp_w, bmp_h = tf.abs(little_endian_signed(18)), tf.abs(little_endian_signed(22))

    def jpeg_size(args: tuple[tf.Tensor, tf.Tensor]) -> tf.Tensor:
        data, is_one = args
        return tf.cond(
            is_one,
            lambda: tf.cast(tf.image.extract_jpeg_shape(data)[:2], tf.int64),  # SOF: [h, w]
            lambda: tf.zeros([2], tf.int64),
        )

    jpeg_hw = tf.map_fn(jpeg_size, (images, is_jpeg), fn_output_signature=tf.TensorSpec([2], tf.int64))
    zero = tf.zeros_like(png_w)
    width = tf.where(is_png, png_w, tf.where(is_bmp, bmp_w, tf.where(is_jpeg, jpeg_hw[:, 1], zero)))
    height = tf.where(is_png, png_h, tf.where(is_bmp, bmp_h, tf.where(is_jpeg, jpeg_hw[:, 0], zero)))
    return kind, width, height


def guard_images(images: tf.Tensor, limits: ImageLimits) -> tf.Tensor:
    """Graph ops: `images` once every one may be decoded (see the module docstring).

    Raises (at run time, InvalidArgumentError → INVALID_ARGUMENT), for the first rule broken:
        `image 3 is 9000000 bytes; this export accepts at most … bytes per image (input.max_image_bytes)`,
        `images could not be decoded: …` (not PNG, JPEG or BMP),
        `image 0 is a GIF; this export decodes PNG, JPEG and BMP only …`,
        `image 3 declares 20000×20000 pixels; this export accepts at most … (input.max_pixels)`.
    """
    length = tf.strings.length(images)
    too_long = length > limits.max_image_bytes
    i = _first(too_long)
    images = _then(
        tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(too_long)),
            [_message("image ", i, " is ", _at(length, i), " bytes; this export accepts at most ",
                      str(limits.max_image_bytes), " bytes per image (input.max_image_bytes)")],
        ),
        images,
    )
    known = tf.logical_or(
        tf.logical_or(tf.strings.substr(images, 0, len(_PNG)) == _PNG, tf.strings.substr(images, 0, len(_JPEG)) == _JPEG),
        tf.logical_or(
            tf.strings.substr(images, 0, len(_BMP)) == _BMP,
            tf.logical_or(tf.strings.substr(images, 0, len(_GIF)) == _GIF, tf.strings.substr(images, 0, len(_RIFF)) == _RIFF),
        ),
    )
    images = _then(tf.debugging.Assert(tf.reduce_all(known), [decode_error_message, known], summarize=8), images)
    kind, width, height = declared_sizes(images)
    unsized = kind >= 4
    i = _first(unsized)
    images = _then(
        tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(unsized)),
            [_message("image ", i, " is a ", tf.gather(tf.constant(["", "", "", "", "GIF", "WebP"]), _at(kind, i)),
                      "; this export decodes PNG, JPEG and BMP only (a GIF's frames each declare their own "
                      "size, and TF 2.14 cannot decode WebP): convert it to PNG")],
        ),
        images,
    )
    no_ihdr = tf.logical_and(tf.equal(kind, 1), width < 0)
    i = _first(no_ihdr)
    images = _then(
        tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(no_ihdr)),
            [_message("image ", i, " is a PNG whose first chunk is not IHDR: its size cannot be read")],
        ),
        images,
    )
    # Each side first: the product of two 32-bit header fields may overflow int64.
    too_big = tf.logical_or(
        tf.logical_or(width > limits.max_pixels, height > limits.max_pixels), width * height > limits.max_pixels
    )
    i = _first(too_big)
    return _then(
        tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(too_big)),
            [_message("image ", i, " declares ", _at(width, i), "×", _at(height, i),
                      " pixels; this export accepts at most ", limits.describe_pixels(), " (input.max_pixels)")],
        ),
        images,
    )


def to_model_input(images: tf.Tensor, config: InputConfig, input_shape: tuple[int, int, int]) -> tf.Tensor:
    """Graph ops: the signature's `images` → the model's float32 [B,H,W,C] input.

    Raises (at run time, InvalidArgumentError → INVALID_ARGUMENT): image bytes the guard
    refuses (`guard_images`), then whatever the decoder itself refuses.
    """
    if config.format == FLOAT32:
        return images
    if config.format == UINT8:
        pixels = tf.cast(images, tf.float32)
    else:
        images = guard_images(images, _bytes_limits(config, input_shape))
        pixels = tf.map_fn(
            lambda data: _decode_one(data, input_shape),
            images,
            fn_output_signature=tf.TensorSpec(input_shape, tf.float32),
        )
    return pixels * config.scale + config.offset


def encode_samples(samples: np.ndarray, config: InputConfig) -> tuple[np.ndarray, np.ndarray]:
    """Float model inputs → (what a client sends in this format, the model input it gives).

    For uint8 and bytes the samples are quantized: pixel = clip(round((x − offset) /
    scale), 0, 255); PNG is lossless, so bytes decode to exactly those pixels.

    Returns:
        (feed for `images`, float32 [N,H,W,C] the model sees).
    """
    samples = np.asarray(samples, np.float32)
    if config.format == FLOAT32:
        return samples, samples
    scale, offset = config.scale, config.offset
    if scale is None or offset is None:  # InputConfig sets both for every format but float32
        raise ValueError(f"input.format {config.format!r} needs input.scale and input.offset; both are None")
    pixels = np.clip(np.rint((samples - offset) / scale), 0, 255).astype(np.uint8)
    model_input = (pixels.astype(np.float32) * np.float32(scale) + np.float32(offset)).astype(np.float32)
    if config.format == UINT8:
        return pixels, model_input
    encoded = np.array([tf.io.encode_png(p).numpy() for p in pixels], dtype=object)
    return encoded, model_input
