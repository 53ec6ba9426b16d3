"""The client's XRAI regions (serving_client.xrai) against PAIR's `saliency.core.XRAI`.

PAIR's XRAI (pip `saliency`, dev extra) is the independent reference: given the same image and
the same base attribution it segments and ranks on its own code; ours must give the same map
and the same ranked masks. No TensorFlow here: the attributions are synthetic (served ones are
compared in tests/exporter/test_xrai.py).
"""

from __future__ import annotations

import dataclasses
import io
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from serving_client import Explanation
from serving_client.xrai import xrai_batch, xrai_explanation, xrai_regions, xrai_segments
from tests.client.xrai_scene import synthetic_scene

saliency_core = pytest.importorskip("saliency.core")


def _attributions(image: np.ndarray, seed: int = 1) -> np.ndarray:
    # Noise plus a block of signal on the red disc: regions with clearly different densities.
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 1, image.shape) + 3.0 * (image[..., :1] > 0.8)).astype(np.float32)


def _pair(image: np.ndarray, attributions: np.ndarray, **params):
    parameters = saliency_core.XRAIParameters(return_xrai_segments=True, flatten_xrai_segments=False, **params)
    return saliency_core.XRAI().GetMaskWithDetails(
        image, None, base_attribution=attributions, extra_parameters=parameters
    )


@pytest.mark.parametrize("size", [64, 96])
def test_region_map_and_masks_equal_pairs_xrai(size):
    image = synthetic_scene(size, seed=size)
    attributions = _attributions(image)
    ours = xrai_regions(image, attributions)
    pair = _pair(image, attributions)
    # PAIR averages float32 attributions in float32, we in float64: ~1e-7 of values ~3.
    diff = np.abs(ours.density - pair.attribution_mask).max()
    print(f"XRAI region map vs PAIR, {size}x{size}: max abs diff {diff:.2e}")
    assert diff < 1e-5 * np.abs(attributions).max()
    assert len(ours.masks) == len(pair.segments) > 3
    for rank, (mask, reference) in enumerate(zip(ours.masks, pair.segments, strict=True)):
        np.testing.assert_array_equal(mask, reference, err_msg=f"mask {rank}")
    assert np.all(np.diff(ours.gains[:-1]) <= 0)  # most important first
    # PAIR's flattened form: rank r + 1 on the pixels of its mask r.
    flat = np.zeros(image.shape[:2], int)
    for rank, reference in enumerate(pair.segments):
        flat[reference] = rank + 1
    np.testing.assert_array_equal(ours.ranks, flat)
    assert ours.saliency.dtype == np.float32
    assert ours.saliency.min() == 0.0 and ours.saliency.max() == 1.0


def test_a_grayscale_mnist_sized_image_equals_pairs_xrai():
    image = synthetic_scene(28, seed=5)[..., :1]
    attributions = _attributions(image, seed=6)
    ours = xrai_regions(image, attributions)
    pair = _pair(image, attributions)
    assert np.abs(ours.density - pair.attribution_mask).max() < 1e-5 * np.abs(attributions).max()
    assert len(ours.masks) == len(pair.segments)
    for mask, reference in zip(ours.masks, pair.segments, strict=True):
        np.testing.assert_array_equal(mask, reference)


def test_area_threshold_and_min_pixel_diff_follow_pair():
    image = synthetic_scene(64, seed=3)
    attributions = _attributions(image, seed=4)
    ours = xrai_regions(image, attributions, area_threshold=0.3, min_pixel_diff=20)
    pair_params = saliency_core.XRAIParameters(area_threshold=0.3, return_xrai_segments=True, flatten_xrai_segments=False)
    pair_params.experimental_params["min_pixel_diff"] = 20
    pair = saliency_core.XRAI().GetMaskWithDetails(image, None, base_attribution=attributions, extra_parameters=pair_params)
    assert np.abs(ours.density - pair.attribution_mask).max() < 1e-5 * np.abs(attributions).max()
    assert len(ours.masks) == len(pair.segments)
    assert ours.masks[-1].mean() > 0.2  # the uncovered rest is one last region


def test_segments_equal_pairs_segments():
    image = synthetic_scene(64, seed=7)
    ours = xrai_segments(image)
    pair = saliency_core.xrai._get_segments_felzenszwalb(image)
    pair = [m for m in pair if m.any()]  # PAIR keeps labels that vanish when resized back
    assert ours.shape[0] == len(pair)
    np.testing.assert_array_equal(ours, np.stack(pair))


def test_uint8_pixels_segment_as_their_float_image():
    image = synthetic_scene(64, seed=2)
    pixels = np.round(image * 255).astype(np.uint8)
    np.testing.assert_array_equal(
        xrai_segments(pixels, segmentation_size=None),
        xrai_segments(pixels.astype(np.float32) / 255 * 2 - 7, segmentation_size=None),
    )


def test_a_constant_attribution_gives_an_all_zero_map_not_nan():
    image = synthetic_scene(64)
    result = xrai_regions(image, np.zeros_like(image))
    assert np.all(result.saliency == 0) and np.all(np.isfinite(result.density))


def test_bad_inputs_are_refused_by_name():
    image = synthetic_scene(64)
    with pytest.raises(ValueError, match=r"image is 64×64 but the attributions are 32×32"):
        xrai_regions(image, np.zeros((32, 32, 3)))
    with pytest.raises(ValueError, match=r"attributions have non-finite values"):
        xrai_regions(image, np.full_like(image, np.nan))
    with pytest.raises(ValueError, match=r"area_threshold must be in \[0, 1\]; received 1.5"):
        xrai_regions(image, image, area_threshold=1.5)
    with pytest.raises(ValueError, match=r"min_pixel_diff must be >= 1; received 0"):
        xrai_regions(image, image, min_pixel_diff=0)
    with pytest.raises(ValueError, match=r"xrai_batch takes images and attributions \[B, H, W, C\]"):
        xrai_batch(image, image)


def _explanation(attributions: np.ndarray | None, signature: str = "explain_xrai") -> Explanation:
    batch, height, width = attributions.shape[:3] if attributions is not None else (1, 64, 64)
    return Explanation(
        logits=np.zeros((batch, 2), np.float32), probabilities=np.zeros((batch, 2), np.float32),
        predicted_class=np.zeros(batch, np.int32), target_class=np.zeros(batch, np.int32),
        saliency=np.zeros((batch, height, width), np.float32), model_name="m", model_version=1,
        signature_name=signature, extras={} if attributions is None else {"attributions": attributions},
        attributions=attributions,
    )


def test_xrai_explanation_replaces_the_map_and_keeps_the_pixel_one():
    images = np.stack([synthetic_scene(64, seed=s) for s in (1, 2)])
    attributions = np.stack([_attributions(im, seed=s) for s, im in enumerate(images)])
    explained = xrai_explanation(_explanation(attributions), images)
    for i in range(2):
        reference = _pair(images[i], attributions[i])
        assert np.abs(explained.extras["xrai_density"][i] - reference.attribution_mask).max() < 1e-5 * 4
        np.testing.assert_array_equal(explained.saliency[i], xrai_regions(images[i], attributions[i]).saliency)
    assert explained.extras["xrai_ranks"].shape == (2, 64, 64) and explained.extras["xrai_ranks"].min() == 1
    assert explained.extras["pixel_saliency"].shape == (2, 64, 64)
    # Encoded images of the model's size decode to the same pixels, and so to the same map.
    pixels = np.round(images * 255).astype(np.uint8)
    encoded = []
    for p in pixels:
        buffer = io.BytesIO()
        Image.fromarray(p).save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    from_bytes = xrai_explanation(_explanation(attributions), encoded)
    np.testing.assert_array_equal(from_bytes.saliency, xrai_explanation(_explanation(attributions), pixels).saliency)
    small = io.BytesIO()
    Image.fromarray(pixels[0][:32, :32]).save(small, format="PNG")
    with pytest.raises(ValueError, match=r"image 0 decodes to 32×32 but the model takes 64×64"):
        xrai_explanation(_explanation(attributions[:1]), [small.getvalue()])
    with pytest.raises(ValueError, match=r"signature 'explain' has no attributions.*'explain_xrai'"):
        xrai_explanation(dataclasses.replace(_explanation(None), signature_name="explain"), images)
    with pytest.raises(ValueError, match=r"do not match the explanation's attributions"):
        xrai_explanation(_explanation(attributions), images[:1])


def test_without_scikit_image_the_client_imports_and_xrai_names_the_extra():
    script = (
        "import sys\n"
        "sys.modules['skimage'] = None  # as if scikit-image were not installed\n"
        "import numpy as np, serving_client, serving_client.xrai as x\n"
        "try:\n"
        "    x.xrai_regions(np.zeros((8, 8, 3)), np.zeros((8, 8, 3)))\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "pip install 'saliency-serving[xrai]'" in result.stdout


@pytest.mark.parametrize("size", [64, 224])
def test_client_side_cost_per_image(size):
    # Measured for docs/methods.md; bounded loosely so a loaded machine does not fail it.
    image = synthetic_scene(size)
    attributions = _attributions(image)
    start = time.perf_counter()
    xrai_regions(image, attributions)
    seconds = time.perf_counter() - start
    print(f"client XRAI {size}x{size}: {seconds * 1000:.0f} ms per image")
    assert seconds < 30


def test_xrai_explanation_takes_the_client_s_other_image_forms():
    gray = synthetic_scene(28, seed=9)[..., :1]
    attributions = _attributions(gray, seed=9)[None]
    expected = xrai_explanation(_explanation(attributions), gray[None]).saliency
    pixels = np.round(gray[..., 0] * 255).astype(np.uint8)
    for images in (gray, gray[None, ..., 0], gray[..., 0], [gray], Image.fromarray(pixels)):
        got = xrai_explanation(_explanation(attributions), images).saliency
        assert got.shape == (1, 28, 28)
        if not hasattr(images, "convert"):
            np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError, match=r"images must be pixels \[B, H, W, C\].*28×28; received shape \(5, 5, 5\)"):
        xrai_explanation(_explanation(attributions), np.zeros((5, 5, 5)))


def test_a_class_axis_is_segmented_per_class_and_matches_pairs_xrai():
    # explain(classes=...) answers [B, K, H, W, C] attributions: each column gets its own regions.
    images = np.stack([synthetic_scene(48, seed=s) for s in (3, 4)])
    columns = [np.stack([_attributions(im, seed=10 * k + s) for s, im in enumerate(images)]) for k in range(2)]
    attributions = np.stack(columns, axis=1)
    several = dataclasses.replace(
        _explanation(attributions), target_class=np.array([[0, 1], [1, 0]], np.int32),
        saliency=np.zeros((2, 2, 48, 48), np.float32),
    )
    explained = xrai_explanation(several, images)
    assert explained.saliency.shape == (2, 2, 48, 48) and explained.extras["xrai_ranks"].shape == (2, 2, 48, 48)
    for k in range(2):
        for b in range(2):
            pair = _pair(images[b], columns[k][b])
            diff = np.abs(explained.extras["xrai_density"][b, k] - pair.attribution_mask).max()
            assert diff < 1e-5 * np.abs(columns[k][b]).max(), (b, k, diff)
            flat = np.zeros(images.shape[1:3], int)
            for rank, reference in enumerate(pair.segments):
                flat[reference] = rank + 1
            np.testing.assert_array_equal(explained.extras["xrai_ranks"][b, k], flat)
