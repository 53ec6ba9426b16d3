"""What the typed client sends for each input format, and how it learns the format.

Conversions are checked on their own (no server); the format cache against the fake TF
Serving of conftest (float32 `images`), over a real socket.
"""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from PIL import Image

import serving_client as sc
from serving_client import ServingClient, as_image_batch

RNG = np.random.default_rng(0)


def _decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_float32_keeps_values_and_adds_the_batch_dimension():
    image = RNG.uniform(-3, 3, (4, 4, 1))
    batch = as_image_batch(image, "float32")
    assert batch.dtype == np.float32 and batch.shape == (1, 4, 4, 1)
    np.testing.assert_array_equal(batch[0], image.astype(np.float32))


def test_uint8_takes_pixels_as_they_are_and_refuses_casts_that_change_them():
    pixels = RNG.integers(0, 256, (2, 4, 4, 3), dtype=np.uint8)
    for same in (pixels, pixels.astype(np.int64), pixels.astype(np.float32), pixels.astype(np.uint16)):
        out = as_image_batch(same, "uint8")
        assert out.dtype == np.uint8
        np.testing.assert_array_equal(out, pixels)
    with pytest.raises(ValueError, match=r"scaled floats\? this export takes pixels 0..255"):
        as_image_batch(np.full((1, 2, 2, 1), -0.5), "uint8")
    with pytest.raises(ValueError, match="non-integral values such as 127.5"):
        as_image_batch(np.full((1, 2, 2, 1), 127.5), "uint8")
    with pytest.raises(ValueError, match=r"values in \[0, 256\] of dtype int16"):
        as_image_batch(np.array([0, 256], np.int16).reshape(1, 1, 2, 1), "uint8")
    with pytest.raises(TypeError, match="bool"):
        as_image_batch(np.ones((1, 2, 2, 1), bool), "uint8")


def test_image_bytes_encodes_arrays_and_pil_images_as_lossless_png():
    pixels = RNG.integers(0, 256, (3, 5, 6, 3), dtype=np.uint8)
    encoded = as_image_batch(pixels, "image_bytes")
    assert encoded.dtype == object and encoded.shape == (3,)
    for data, expected in zip(encoded, pixels, strict=True):
        assert data.startswith(b"\x89PNG")
        np.testing.assert_array_equal(_decoded(data), expected)
    gray = RNG.integers(0, 256, (5, 6, 1), dtype=np.uint8)
    np.testing.assert_array_equal(_decoded(as_image_batch(gray, "image_bytes")[0]), gray[:, :, 0])
    rgba = Image.fromarray(RNG.integers(0, 256, (4, 4, 4), dtype=np.uint8), "RGBA")
    np.testing.assert_array_equal(_decoded(as_image_batch(rgba, "image_bytes")[0]), np.asarray(rgba))


def test_image_bytes_sends_bytes_and_files_unchanged(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, (7, 7, 3), dtype=np.uint8)).save(buffer, format="JPEG")
    jpeg = buffer.getvalue()
    path = tmp_path / "x.jpg"
    path.write_bytes(jpeg)
    batch = as_image_batch([jpeg, str(path), path, np.bytes_(jpeg)], "image_bytes")
    assert list(batch) == [jpeg] * 4


def test_unknown_formats_and_dtypes_are_named():
    with pytest.raises(ValueError, match="input_format must be one of float32, uint8, image_bytes"):
        as_image_batch(np.zeros((1, 2, 2, 1)), "png")
    from serving_client._inputs import input_format_of

    with pytest.raises(ValueError, match="takes 'images' of dtype float16.*raw_predict"):
        input_format_of("float16", "explain")


def test_the_format_is_read_once_per_client_even_from_many_threads(serving):
    with ServingClient(serving.target, "mnist") as client:
        barrier = threading.Barrier(8)
        errors: list[BaseException] = []

        def call() -> None:
            try:
                barrier.wait()
                client.explain(np.ones((1, 8, 8, 1), np.float32))
            except BaseException as error:  # noqa: BLE001 - reported below
                errors.append(error)

        threads = [threading.Thread(target=call) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        assert client.input_format("explain") == "float32"
    assert serving.calls["mnist"] == 1 + 8  # one metadata call, eight Predicts
    assert len(serving.requests) == 8


def test_metadata_fills_the_cache_and_unknown_signatures_fall_back_to_float32(serving):
    with ServingClient(serving.target, "mnist") as client:
        client.metadata()
        client.explain(np.ones((1, 8, 8, 1), np.float32))
        assert serving.calls["mnist"] == 2
        # Not in the metadata: asked again once, then sent as float32 for the server to judge.
        with pytest.raises(sc.InvalidArgumentError, match="wrong shape"):
            client.explain(np.ones((1, 8, 8, 1), np.float32), signature="bad")
        assert serving.calls["mnist"] == 4
