"""render: heatmaps, overlays, grids and PNG writing with Pillow + numpy only."""

from __future__ import annotations

import numpy as np
import pytest

from serving_client import render
from serving_client._colormaps import lookup_table


@pytest.mark.parametrize("colormap", ["inferno", "viridis", "jet", "gray"])
def test_heatmap_is_uint8_rgb_of_the_map_size(colormap):
    result = render.heatmap(np.linspace(0, 1, 12).reshape(3, 4), colormap=colormap)
    assert result.shape == (3, 4, 3)
    assert result.dtype == np.uint8
    np.testing.assert_array_equal(result[0, 0], lookup_table(colormap)[0])
    np.testing.assert_array_equal(result[-1, -1], lookup_table(colormap)[255])


def test_gray_colormap_is_the_identity_ramp():
    np.testing.assert_array_equal(lookup_table("gray")[:, 0], np.arange(256))


@pytest.mark.parametrize("colormap", ["inferno", "viridis"])
def test_perceptual_colormaps_get_brighter_monotonically(colormap):
    luma = lookup_table(colormap).astype(float) @ [0.299, 0.587, 0.114]
    assert np.all(np.diff(luma) >= -0.5)


def test_all_zero_map_gives_a_valid_image():
    zeros = np.zeros((5, 5), np.float32)
    assert render.heatmap(zeros).dtype == np.uint8
    result = render.overlay(np.full((5, 5), 0.5), zeros, clip_percentile=99)
    assert result.dtype == np.uint8
    # alpha 0.5 of gray 0.5 and inferno's near-black: no NaN turned into garbage
    assert np.all(np.abs(result.astype(int) - 64) <= 2)


def test_nan_saliency_is_rejected_with_a_clear_error():
    saliency = np.zeros((3, 3))
    saliency[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        render.heatmap(saliency)
    with pytest.raises(ValueError, match="NaN"):
        render.overlay(np.zeros((3, 3)), saliency)


def test_unknown_colormap_lists_the_choices():
    with pytest.raises(ValueError, match="inferno"):
        render.heatmap(np.zeros((2, 2)), colormap="rainbow")


@pytest.mark.parametrize(
    "image",
    [
        np.full((4, 4), 0.25),
        np.full((4, 4, 1), 0.25, np.float32),
        np.full((4, 4, 3), 0.25),
        np.full((4, 4, 3), 64, np.uint8),
    ],
)
def test_overlay_accepts_gray_rgb_float_and_uint8_images(image):
    result = render.overlay(image, np.zeros((4, 4)), alpha=0.0)
    assert result.shape == (4, 4, 3)
    assert result.dtype == np.uint8
    assert np.all(np.abs(result.astype(int) - 64) <= 1)  # alpha 0: the image itself


def test_overlay_alpha_one_is_the_heatmap_of_the_renormalized_map():
    saliency = np.array([[0.0, 0.25], [0.5, 0.5]])
    result = render.overlay(np.zeros((2, 2)), saliency, alpha=1.0)
    np.testing.assert_array_equal(result, render.heatmap(saliency / 0.5))


def test_percentile_clipping_clips_hot_pixels_before_renormalizing():
    saliency = np.full((10, 10), 0.1)
    saliency[0, 0] = 1.0  # one outlier would otherwise leave everything else dark
    unclipped = render.overlay(np.zeros((10, 10)), saliency, alpha=1.0, colormap="gray")
    clipped = render.overlay(
        np.zeros((10, 10)), saliency, alpha=1.0, colormap="gray", clip_percentile=90
    )
    assert unclipped[5, 5, 0] == round(0.1 * 255)
    assert clipped[5, 5, 0] == 255
    assert clipped[0, 0, 0] == 255


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"alpha": 1.5}, "alpha"), ({"clip_percentile": 0}, "clip_percentile")],
)
def test_overlay_rejects_out_of_range_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        render.overlay(np.zeros((2, 2)), np.zeros((2, 2)), **kwargs)


def test_overlay_rejects_a_map_of_another_size():
    with pytest.raises(ValueError, match="does not match"):
        render.overlay(np.zeros((4, 4)), np.zeros((2, 2)))


def test_grid_upscales_and_pads_cells():
    cells = [[np.zeros((2, 3)), np.full((2, 3, 3), 255, np.uint8)], [np.ones((2, 3, 1))]]
    result = render.grid(cells, scale=4, pad=2)
    assert result.dtype == np.uint8
    assert result.shape == (2 + 2 * (8 + 2), 2 + 2 * (12 + 2), 3)
    # nearest neighbour: the first cell is an exact 8x12 black block
    assert not result[2:10, 2:14].any()
    assert np.all(result[1, :] == 255)  # padding is white


def test_grid_labels_add_a_text_column():
    cells = [[np.zeros((4, 4))], [np.zeros((4, 4))]]
    plain = render.grid(cells, scale=2)
    labelled = render.grid(cells, labels=["digit 7", "digit 1"], scale=2)
    assert labelled.shape[0] == plain.shape[0]
    assert labelled.shape[1] > plain.shape[1]
    label_area = labelled[:, : labelled.shape[1] - plain.shape[1]]
    assert (label_area < 128).any()  # some text was drawn


def test_grid_rejects_a_label_count_that_differs_from_the_rows():
    with pytest.raises(ValueError, match="2 labels for 1 rows"):
        render.grid([[np.zeros((2, 2))]], labels=["a", "b"])


def test_save_png_round_trips_pixels(tmp_path):
    from PIL import Image

    rgb = np.random.default_rng(1).integers(0, 256, size=(5, 6, 3), dtype=np.uint8)
    path = render.save_png(rgb, tmp_path / "nested" / "out.png")
    assert path.exists()
    np.testing.assert_array_equal(np.asarray(Image.open(path)), rgb)
    gray_path = render.save_png(np.full((3, 3), 1.0), tmp_path / "gray.png")
    assert Image.open(gray_path).mode == "L"
