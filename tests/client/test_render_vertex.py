"""Rendering with Vertex Explainable AI's visualization vocabulary: PIXELS and OUTLINES.

The reference computations are written here from the definitions, independently of
serving_client.render: percentile clipping as Vertex's Visualization message defines it
(`clip_percent_upperbound`: attributions above that percentile saturate; `clip_percent_lowerbound`:
attributions below it are excluded from the highlighted areas; polarity picks the sign,
https://cloud.google.com/vertex-ai/docs/reference/rest/v1/ExplanationSpec#visualization), and
the outlines' morphology with SciPy's ndimage on the same mask.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from serving_client import render
from serving_client._colormaps import lookup_table
from serving_client.visualization import Visualization

RNG = np.random.default_rng(7)
SIGNED = RNG.normal(size=(24, 20)).astype(np.float32)
SQUARE = np.ones((3, 3), bool)


def vertex_scaled(values: np.ndarray, polarity: str, low: float, high: float) -> np.ndarray:
    """Vertex's definition: the polarity's magnitude, saturated above the `high` percentile and
    hidden below the `low` one, scaled to [0, 1] between the two (signed for "both")."""
    v = values.astype(np.float64)
    magnitude = {"positive": np.maximum(v, 0), "negative": np.maximum(-v, 0), "both": np.abs(v)}[polarity]
    top = np.percentile(magnitude, high) if high < 100 else magnitude.max()
    bottom = np.percentile(magnitude, low) if low > 0 else 0.0
    scaled = np.clip((magnitude - bottom) / (top - bottom), 0, 1)
    return np.sign(v) * scaled if polarity == "both" else scaled


@pytest.mark.parametrize("polarity", ["positive", "negative", "both"])
@pytest.mark.parametrize(("low", "high"), [(0, 100), (62, 99.9), (70, 99.9), (10, 90)])
def test_pixels_equal_the_percentile_definition_for_each_polarity(polarity, low, high):
    expected = vertex_scaled(SIGNED, polarity, low, high)
    got = render.scale_map(SIGNED, polarity=polarity, clip_percentiles=(low, high))
    np.testing.assert_allclose(got, expected, atol=1e-6)
    # gray has table[i] = i: the drawn pixel is the scaled value, in the colormap's position.
    picture = render.overlay(
        np.zeros((24, 20)), SIGNED, polarity=polarity, clip_percentiles=(low, high),
        colormap="gray", overlay_type="none",
    )  # fmt: skip
    position = (expected + 1) / 2 if polarity == "both" else expected
    np.testing.assert_array_equal(picture[..., 0], np.rint(position * 255).astype(np.uint8))


@pytest.mark.parametrize("polarity", ["positive", "negative", "both"])
def test_diverging_maps_draw_positive_green_and_negative_pink_around_the_neutral_middle(polarity):
    table = lookup_table("pink_green")
    picture = render.overlay(
        np.zeros((24, 20)), SIGNED, polarity=polarity, colormap="pink_green", overlay_type="none"
    )
    scaled = vertex_scaled(SIGNED, polarity, 0, 100)
    signed = -scaled if polarity == "negative" else scaled
    np.testing.assert_array_equal(picture, table[np.rint((signed + 1) / 2 * 255).astype(int)])
    strength = {"positive": SIGNED, "negative": -SIGNED, "both": np.abs(SIGNED)}[polarity]
    hottest = np.unravel_index(np.argmax(strength), SIGNED.shape)
    end = 0 if polarity == "negative" or SIGNED[hottest] < 0 else 255
    np.testing.assert_array_equal(picture[hottest], table[end])


def test_red_and_green_color_the_magnitude_of_both_signs_alike():
    for name, channel in (("red", 0), ("green", 1)):
        picture = render.overlay(np.zeros((24, 20)), SIGNED, polarity="both", colormap=name, overlay_type="none")
        magnitude = np.abs(vertex_scaled(SIGNED, "both", 0, 100))
        np.testing.assert_array_equal(picture[..., channel], np.rint(magnitude * 255).astype(np.uint8))
        assert not picture[..., [c for c in range(3) if c != channel]].any()


def test_vertex_color_map_names_are_all_drawable():
    for name in ("pink_green", "pink_white_green", "viridis", "red", "green", "red_green"):
        assert name in render.COLORMAPS
        assert lookup_table(name).shape == (256, 3)
    np.testing.assert_array_equal(lookup_table("pink_white_green"), lookup_table("pink_green"))
    red_green = lookup_table("red_green")
    assert tuple(red_green[0]) == (255, 0, 0) and tuple(red_green[255]) == (0, 255, 0)


def _blobs() -> np.ndarray:
    region = np.zeros((30, 30), bool)
    region[3:12, 4:15] = True  # a block
    region[18:27, 18:28] = True
    region[20:23, 21:24] = False  # with a hole
    region[5, 25] = True  # a speck the cleanup removes
    region[14:16, 0:30] = True  # a 2-pixel line it removes too
    region[0:6, 27:30] = True  # a region at the corner
    return region


def test_outline_is_the_rim_of_the_opened_region_as_scipy_computes_it():
    region = _blobs() | (RNG.random((30, 30)) > 0.93)
    opened = ndimage.binary_dilation(ndimage.binary_erosion(region, SQUARE, border_value=0), SQUARE)
    expected = opened & ~ndimage.binary_erosion(opened, SQUARE, border_value=0)
    got = render.outline(region)
    np.testing.assert_array_equal(got, expected)
    assert got.any() and not got[5, 25] and not got[14:16, 16].any()


@pytest.mark.parametrize("overlay_type", ["original", "grayscale", "none", "mask_black"])
def test_outlines_draw_the_boundary_of_the_clipped_region_over_the_overlay_base(overlay_type):
    values = np.where(_blobs(), 1.0, 0.0) * RNG.uniform(0.5, 1.0, (30, 30))
    image = RNG.random((30, 30, 3)).astype(np.float32)
    picture = render.overlay(
        image, values, visualization_type="outlines", colormap="pink_green",
        clip_percentiles=(40, 99.9), overlay_type=overlay_type,
    )  # fmt: skip
    scaled = vertex_scaled(values, "positive", 40, 99.9)
    rim = ndimage.binary_dilation(ndimage.binary_erosion(scaled > 0, SQUARE, border_value=0), SQUARE)
    rim &= ~ndimage.binary_erosion(rim, SQUARE, border_value=0)
    assert rim.any()
    green = lookup_table("pink_green")[255]
    np.testing.assert_array_equal(picture[rim], np.broadcast_to(green, (int(rim.sum()), 3)))
    base = {
        "original": image,
        "grayscale": np.repeat((image @ np.array([0.299, 0.587, 0.114]))[..., None], 3, axis=2),
        "none": np.zeros_like(image),
        "mask_black": image * scaled[..., None],
    }[overlay_type]
    np.testing.assert_allclose(picture[~rim], np.rint(base[~rim] * 255), atol=1)


def test_outlines_with_both_polarities_outline_each_sign_in_its_color():
    values = np.zeros((30, 30))
    values[3:12, 4:15] = 1.0
    values[18:27, 18:28] = -1.0
    picture = render.overlay(
        np.zeros((30, 30)), values, polarity="both", visualization_type="outlines", overlay_type="none"
    )
    table = lookup_table("pink_green")
    np.testing.assert_array_equal(picture[3, 4], table[255])  # positive rim: green
    np.testing.assert_array_equal(picture[18, 18], table[0])  # negative rim: pink
    assert not picture[7, 9].any() and not picture[22, 22].any()  # insides stay the base (black)


def test_all_zero_map_outlines_nothing_and_has_no_nan():
    picture = render.overlay(np.full((8, 8), 0.5), np.zeros((8, 8)), visualization_type="outlines")
    assert np.all(picture == 128)


def test_unknown_visualization_type_is_refused():
    with pytest.raises(ValueError, match="visualization_type 'heat'"):
        render.overlay(np.zeros((2, 2)), np.zeros((2, 2)), visualization_type="heat")


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"type": "CONTOURS"}, "type"),
        ({"colorMap": "RAINBOW"}, "colorMap"),
        ({"overlayType": "BLUR"}, "overlayType"),
        ({"clipPercentUpperbound": "high"}, "clipPercentUpperbound"),
        ({"clipPercentLowerbound": 99.95}, "lowerbound < upperbound"),
        ({"opacity": 0.5}, "opacity"),
    ],
)
def test_visualization_blocks_are_refused_by_field(block, message):
    with pytest.raises(ValueError, match=message):
        Visualization.from_vertex(block)


def test_unspecified_enum_values_mean_the_default():
    vis = Visualization.from_vertex({"type": "TYPE_UNSPECIFIED", "polarity": "POLARITY_UNSPECIFIED"})
    assert (vis.type, vis.polarity) == ("outlines", "positive")
