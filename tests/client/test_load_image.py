"""load_image: PNG, JPEG and .npy to float32 [H, W, C], with the documented conversions."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from serving_client.render import load_image


@pytest.fixture
def gray_png(tmp_path):
    pixels = np.arange(16, dtype=np.uint8).reshape(4, 4) * 16
    path = tmp_path / "gray.png"
    Image.fromarray(pixels).save(path)
    return path, pixels


def test_png_is_scaled_to_unit_range(gray_png):
    path, pixels = gray_png
    image = load_image(path)
    assert image.dtype == np.float32
    assert image.shape == (4, 4, 1)
    np.testing.assert_allclose(image[..., 0], pixels / 255.0, rtol=1e-6)


def test_gray_png_is_repeated_to_rgb_when_expected(gray_png):
    path, pixels = gray_png
    image = load_image(path, expected_shape=(4, 4, 3))
    assert image.shape == (4, 4, 3)
    np.testing.assert_allclose(image[..., 2], pixels / 255.0, rtol=1e-6)


def test_rgb_png_is_converted_to_gray_and_resized(tmp_path):
    path = tmp_path / "rgb.png"
    Image.fromarray(np.full((10, 20, 3), (255, 0, 0), np.uint8)).save(path)
    image = load_image(path, expected_shape=(28, 28, 1))
    assert image.shape == (28, 28, 1)
    np.testing.assert_allclose(image, 76 / 255.0, atol=1 / 255)  # PIL's luma of pure red


def test_resize_is_bilinear(tmp_path):
    path = tmp_path / "ramp.npy"
    np.save(path, np.array([[0.0, 1.0]], np.float32))
    image = load_image(path, expected_shape=(1, 4, 1))
    assert image[0, 0, 0] < image[0, 1, 0] < image[0, 2, 0] < image[0, 3, 0]


def test_jpeg_loads_as_rgb(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(path, quality=95)
    image = load_image(path)
    assert image.shape == (8, 8, 3)
    np.testing.assert_allclose(image, 200 / 255.0, atol=3 / 255)


def test_npy_float_is_kept_as_is_and_uint8_is_scaled(tmp_path):
    floats = np.array([[-2.0, 3.5]], np.float64)
    np.save(tmp_path / "f.npy", floats)
    loaded = load_image(tmp_path / "f.npy")
    assert loaded.dtype == np.float32
    assert loaded.shape == (1, 2, 1)
    np.testing.assert_array_equal(loaded[..., 0], floats)

    np.save(tmp_path / "u.npy", np.array([[[0, 255, 51]]], np.uint8))
    np.testing.assert_allclose(load_image(tmp_path / "u.npy"), [[[0.0, 1.0, 0.2]]], rtol=1e-6)


@pytest.mark.parametrize(("name", "content"), [("bad.png", b"not a png"), ("bad.npy", b"\x93NUMPY junk")])
def test_corrupt_files_raise_value_error_naming_the_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=name):
        load_image(path)


def test_truncated_png_is_reported_as_corrupt(tmp_path, gray_png):
    path, _ = gray_png
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ValueError, match="truncated.png"):
        load_image(truncated)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.png"):
        load_image(tmp_path / "nope.png")


def test_unsupported_expected_channels_are_rejected(gray_png):
    with pytest.raises(ValueError, match="C 1 or 3"):
        load_image(gray_png[0], expected_shape=(4, 4, 2))
