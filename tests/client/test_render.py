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


# -- signed maps, polarity, clip percentiles, diverging colormap, overlay types ------------------


def test_signed_map_sums_channels_and_keeps_the_sign():
    attributions = np.zeros((2, 2, 3), np.float32)
    attributions[0, 0] = [1.0, 2.0, -0.5]  # 2.5
    attributions[1, 1] = [-1.0, -1.0, 0.0]  # -2
    np.testing.assert_array_equal(render.signed_map(attributions), [[2.5, 0.0], [0.0, -2.0]])
    np.testing.assert_array_equal(render.signed_map(np.eye(2)), np.eye(2))  # [H, W] passes


@pytest.mark.parametrize("bad", [np.zeros((1, 2, 2, 3)), np.zeros(4), np.full((2, 2, 1), np.inf)])
def test_signed_map_rejects_batches_and_non_finite_values(bad):
    with pytest.raises(ValueError, match="attributions"):
        render.signed_map(bad)


SIGNED = np.array([[-4.0, -2.0], [1.0, 2.0]], np.float32)


@pytest.mark.parametrize(
    ("polarity", "expected"),
    [
        ("positive", [[0.0, 0.0], [0.5, 1.0]]),
        ("negative", [[1.0, 0.5], [0.0, 0.0]]),
        ("both", [[-1.0, -0.5], [0.25, 0.5]]),
    ],
)
def test_scale_map_polarity_on_a_known_map(polarity, expected):
    np.testing.assert_allclose(render.scale_map(SIGNED, polarity=polarity), expected)


def test_scale_map_ranges_hold_for_random_maps():
    values = np.random.default_rng(3).normal(size=(16, 16)).astype(np.float32)
    for polarity, low in (("positive", 0.0), ("negative", 0.0), ("both", -1.0)):
        scaled = render.scale_map(values, polarity=polarity, clip_percentiles=(10, 90))
        assert scaled.shape == (16, 16) and scaled.dtype == np.float32
        assert scaled.min() >= low and scaled.max() == 1.0


def test_clip_percentiles_hide_low_values_and_saturate_high_ones():
    values = np.arange(1, 11, dtype=np.float32).reshape(2, 5)  # 1..10
    scaled = render.scale_map(values, clip_percentiles=(50, 90))
    floor, ceiling = np.percentile(values, 50), np.percentile(values, 90)  # 5.5, 9.1
    np.testing.assert_allclose(scaled, np.clip((values - floor) / (ceiling - floor), 0, 1), rtol=1e-6)
    assert (scaled[values <= 5] == 0).all()
    assert (scaled[values >= 10] == 1).all()


def test_clip_percentiles_zero_low_keeps_zero_as_the_floor():
    # low = 0 means "from 0", not "from the minimum": the old single-percentile behaviour.
    values = np.array([[0.5, 1.0]], np.float32)
    np.testing.assert_allclose(render.scale_map(values), [[0.5, 1.0]])
    np.testing.assert_allclose(
        render.scale_map(values, clip_percentiles=(0, 50)), [[0.5 / 0.75, 1.0]]
    )


@pytest.mark.parametrize("values", [np.zeros((3, 3)), np.full((3, 3), 0.4)])
def test_scale_map_of_a_flat_map_has_no_nan(values):
    for polarity in render.POLARITIES:
        scaled = render.scale_map(values, polarity=polarity, clip_percentiles=(20, 80))
        assert np.isfinite(scaled).all()
    np.testing.assert_array_equal(render.scale_map(values), (values > 0).astype(np.float32))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"polarity": "up"}, "polarity"),
        ({"clip_percentiles": (90, 10)}, "clip_percentiles"),
        ({"clip_percentiles": (-1, 50)}, "clip_percentiles"),
        ({"clip_percentiles": (0, 101)}, "clip_percentiles"),
        ({"clip_percentiles": 99}, "clip_percentiles"),
    ],
)
def test_scale_map_rejects_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        render.scale_map(np.zeros((2, 2)), **kwargs)


def test_single_clip_percentile_equals_clip_percentiles_from_zero():
    saliency = np.random.default_rng(0).random((8, 8))
    image = np.zeros((8, 8))
    np.testing.assert_array_equal(
        render.overlay(image, saliency, clip_percentile=80),
        render.overlay(image, saliency, clip_percentiles=(0, 80)),
    )
    with pytest.raises(ValueError, match="not both"):
        render.overlay(image, saliency, clip_percentile=80, clip_percentiles=(0, 80))


def test_pink_green_is_pink_below_neutral_gray_at_zero_green_above():
    table = lookup_table("pink_green")
    assert tuple(table[0]) == (0x8E, 0x01, 0x52)
    assert tuple(table[255]) == (0x27, 0x64, 0x19)
    assert np.all(np.abs(table[127].astype(int) - 0xF7) <= 1)
    assert "pink_green" in render.COLORMAPS and "pink_green" in render.DIVERGING


def test_overlay_both_uses_the_diverging_colormap_centered_on_zero():
    result = render.overlay(np.zeros((2, 2)), SIGNED, alpha=1.0, polarity="both")
    table = lookup_table("pink_green")
    np.testing.assert_array_equal(result[0, 0], table[0])  # most negative → pink end
    np.testing.assert_array_equal(result[1, 1], table[round(0.75 * 255)])  # +0.5 of max |v|
    zero = render.overlay(np.zeros((1, 2)), np.array([[0.0, 1.0]]), alpha=1.0, polarity="both")
    np.testing.assert_array_equal(zero[0, 0], table[128])  # zero → neutral middle


def test_overlay_negative_lights_the_negative_pixels():
    result = render.overlay(np.zeros((2, 2)), SIGNED, alpha=1.0, polarity="negative", colormap="gray")
    np.testing.assert_array_equal(result[..., 0], [[255, 128], [0, 0]])


def test_overlay_grayscale_blends_over_the_luma_of_the_image():
    red = np.zeros((2, 2, 3), np.float32)
    red[..., 0] = 1.0
    result = render.overlay(red, np.zeros((2, 2)), alpha=0.0, overlay_type="grayscale")
    expected = round(0.299 * 255)
    assert np.all(np.abs(result.astype(int) - expected) <= 1)  # gray, all channels equal
    assert np.all(result[..., 0] == result[..., 2])


def test_overlay_mask_shows_the_image_only_where_the_map_is_high():
    image = np.full((2, 2, 3), 200, np.uint8)
    saliency = np.array([[0.0, 0.5], [1.0, 0.25]])
    result = render.overlay(image, saliency, overlay_type="mask")
    np.testing.assert_array_equal(result[..., 1], [[0, 100], [200, 50]])
    cut = render.overlay(image, saliency, overlay_type="mask", clip_percentiles=(50, 100))
    assert cut[0, 0, 0] == 0 and cut[1, 1, 0] == 0  # below the median (0.375): hidden
    assert 0 < cut[0, 1, 0] < cut[1, 0, 0] == 200


def test_overlay_rejects_an_unknown_overlay_type():
    with pytest.raises(ValueError, match="overlay_type"):
        render.overlay(np.zeros((2, 2)), np.zeros((2, 2)), overlay_type="blend")


def test_grid_column_labels_add_a_header_row():
    cells = [[np.zeros((4, 4)), np.zeros((4, 4))]]
    plain = render.grid(cells, scale=2)
    labelled = render.grid(cells, scale=2, column_labels=["input", "integrated_gradients"])
    assert labelled.shape[0] > plain.shape[0]
    assert labelled.shape[1] > plain.shape[1]  # the long label widened the columns
    assert (labelled[: labelled.shape[0] - plain.shape[0]] < 128).any()
    with pytest.raises(ValueError, match="column labels"):
        render.grid(cells, column_labels=["one"])
