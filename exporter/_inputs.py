"""Input formats of the signatures' `images`: float32 pixels, uint8 pixels, or encoded images.

Whatever the format, the model sees float32 [B,H,W,C] and every gradient is taken with
respect to that float image (after conversion/decoding), so the maps are those of the
float path on the same pixels. For uint8 and image bytes:

    model_input = pixel * scale + offset          (pixel in 0..255)

Only the graph side (TensorFlow) and the numpy encoding of samples for verification and
warmup live here.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from exporter import _contract as c
from exporter._config import InputConfig
from exporter._errors import UnsupportedModelError

__all__ = ["decode_error_message", "encode_samples", "images_spec", "to_model_input"]

#: Leading bytes of the formats `tf.io.decode_image` reads (WebP: "RIFF" then "WEBP" at 8).
_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"RIFF")

decode_error_message = (
    "images could not be decoded: each element must be the bytes of a PNG, JPEG, GIF, BMP "
    "or WebP image; received bytes that are none of these (per image, 0 = not an image):"
)


def images_spec(config: InputConfig, input_shape: tuple[int, int, int]) -> tf.TensorSpec:
    """The `images` input of every signature for this format.

    Raises:
        UnsupportedModelError: image_bytes for a model whose channel count no image
            format has (decoders give 1, 3 or 4 channels).
    """
    if config.format == "image_bytes":
        if input_shape[-1] not in (1, 3, 4):
            raise UnsupportedModelError(
                f"input.format image_bytes decodes images to 1 (grayscale), 3 (RGB) or 4 (RGBA) "
                f"channels; the model takes {input_shape[-1]}. Use the uint8 or float32 format."
            )
        return tf.TensorSpec([None], tf.string, name=c.IMAGES)
    dtype = tf.uint8 if config.format == "uint8" else tf.float32
    return tf.TensorSpec([None, *input_shape], dtype, name=c.IMAGES)


def _decode_one(data: tf.Tensor, input_shape: tuple[int, int, int]) -> tf.Tensor:
    height, width, channels = input_shape
    image = tf.io.decode_image(data, channels=channels, dtype=tf.uint8, expand_animations=False)
    image = tf.cast(image, tf.float32)
    same = tf.reduce_all(tf.equal(tf.shape(image)[:2], [height, width]))
    # Bilinear, no aspect preservation; an image of the right size is passed through as is.
    resized = tf.cond(
        same,
        lambda: image,
        lambda: tf.image.resize(image, [height, width], method="bilinear"),
    )
    return tf.ensure_shape(resized, input_shape)


def to_model_input(images: tf.Tensor, config: InputConfig, input_shape: tuple[int, int, int]) -> tf.Tensor:
    """Graph ops: the signature's `images` → the model's float32 [B,H,W,C] input.

    Raises (at run time, InvalidArgumentError → INVALID_ARGUMENT): bytes that are not an
    image (checked on their leading bytes, then by the decoder itself).
    """
    if config.format == "float32":
        return images
    if config.format == "uint8":
        pixels = tf.cast(images, tf.float32)
    else:
        known = tf.zeros_like(images, tf.bool)
        for magic in _MAGIC:
            known = tf.logical_or(known, tf.strings.substr(images, 0, len(magic)) == magic)
        check = tf.debugging.Assert(tf.reduce_all(known), [decode_error_message, known], summarize=8)
        with tf.control_dependencies([check]):
            images = tf.identity(images)
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
    if config.format == "float32":
        return samples, samples
    pixels = np.clip(np.rint((samples - config.offset) / config.scale), 0, 255).astype(np.uint8)
    model_input = (pixels.astype(np.float32) * np.float32(config.scale) + np.float32(config.offset)).astype(np.float32)
    if config.format == "uint8":
        return pixels, model_input
    encoded = np.array([tf.io.encode_png(p).numpy() for p in pixels], dtype=object)
    return encoded, model_input
