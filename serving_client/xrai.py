"""XRAI's regions (Kapishnikov et al. 2019), the client's half; TF-free, needs scikit-image.

The export's ``explain_xrai`` signature serves XRAI's Integrated Gradients (black and white
baselines, averaged) as ``attributions``; segmentation is not a TensorFlow op, so the regions
are made here, from the image the client sent:

1. segment the image with Felzenszwalb's graph method at several scales (the image min-max
   scaled to [-1, 1] and resized to 224×224 first, so the scales mean the same for every
   image size; the labels resized back by nearest neighbour), one boolean mask per segment,
   each dilated by a disk so that regions include their edges;
2. reduce the attributions over channels by their maximum;
3. grow a region greedily: at each step add the mask whose not-yet-covered pixels have the
   highest mean attribution (gain per pixel), skipping masks that would add fewer than
   ``min_pixel_diff`` pixels, until the covered area exceeds ``area_threshold`` or no mask
   is left; each pixel gets the gain of the step that covered it, the pixels no mask covered
   get their own mean attribution;
4. ``density`` is that map; ``saliency`` is it min-max scaled to [0, 1] (as every served map);
   ``masks`` are the added pieces (disjoint), most important (highest gain) first, the
   uncovered rest last; ``ranks`` the same as one integer image (1 = most important).

The defaults are those of PAIR's ``saliency.core.XRAI`` (its ``full`` algorithm), which the
tests compare against. Install with ``pip install 'saliency-serving[xrai]'``.
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import contract
from ._results import Explanation

__all__ = [
    "XraiResult",
    "xrai_batch",
    "xrai_explanation",
    "xrai_regions",
    "xrai_segments",
]

#: Felzenszwalb's `scale` values (larger: bigger segments), as PAIR's XRAI.
SCALES: tuple[float, ...] = (50, 100, 150, 250, 500, 1200)
#: Felzenszwalb's Gaussian pre-smoothing.
SIGMA = 0.8
#: Felzenszwalb's smallest segment, in pixels of the segmentation size.
MIN_SEGMENT_SIZE = 150
#: The size the image is resized to for segmentation (None: its own).
SEGMENTATION_SIZE: tuple[int, int] = (224, 224)
#: Each mask is dilated by a disk of this radius (0: not at all).
DILATION_RADIUS = 5
#: A mask is dropped once it would add fewer than this many new pixels.
MIN_PIXEL_DIFF = 50

_INSTALL = "pip install 'saliency-serving[xrai]'"


@dataclasses.dataclass(frozen=True)
class XraiResult:
    """XRAI for one image.

    Attributes:
        saliency: float32 [H, W] in [0, 1], the region map min-max scaled (0 everywhere
            for a constant map).
        density: float64 [H, W], each pixel the gain (mean attribution) of the region that
            covered it: PAIR's ``XRAI.GetMask`` output.
        masks: bool [R, H, W], the disjoint regions in order of importance (most important
            first); the pixels no mask reached, if any, are the last one.
        gains: float64 [R], each region's mean attribution.
    """

    saliency: np.ndarray
    density: np.ndarray
    masks: np.ndarray
    gains: np.ndarray

    @property
    def ranks(self) -> np.ndarray:
        """int32 [H, W]: 1 for the pixels of the most important region, R for the last."""
        ranks = np.zeros(self.density.shape, np.int32)
        for rank, mask in enumerate(self.masks, start=1):
            ranks[mask] = rank
        return ranks


def _skimage() -> tuple[Any, Any, Any]:
    """scikit-image's segmentation, morphology and transform modules, or a clear ImportError."""
    try:
        return (
            importlib.import_module("skimage.segmentation"),
            importlib.import_module("skimage.morphology"),
            importlib.import_module("skimage.transform"),
        )
    except ImportError as error:
        raise ImportError(
            f"XRAI's regions need scikit-image, which is not installed ({error}); install the "
            f"xrai extra: {_INSTALL}"
        ) from error


def _image_hwc(image: Any, what: str = "image") -> np.ndarray:
    array = np.asarray(image)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{what} must be a numeric pixel array [H, W, C]; received dtype {array.dtype}.")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or 0 in array.shape:
        raise ValueError(f"{what} must be [H, W, C] (or [H, W]) with pixels; received shape {array.shape}.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} has non-finite values (NaN or inf); XRAI segments finite pixels.")
    return array.astype(np.float64)


def xrai_segments(
    image: Any,
    *,
    scales: Sequence[float] = SCALES,
    sigma: float = SIGMA,
    min_segment_size: int = MIN_SEGMENT_SIZE,
    segmentation_size: tuple[int, int] | None = SEGMENTATION_SIZE,
    dilation_radius: int = DILATION_RADIUS,
) -> np.ndarray:
    """The candidate regions of `image`: Felzenszwalb segments at each scale, dilated.

    Args:
        image: [H, W, C] or [H, W] pixels, any numeric dtype and range (min-max scaled to
            [-1, 1] first, so uint8 pixels and the model's float input give the same segments).
        scales: Felzenszwalb's `scale` values, one segmentation each.
        sigma: Felzenszwalb's Gaussian pre-smoothing.
        min_segment_size: Felzenszwalb's `min_size`, in pixels of the segmentation size.
        segmentation_size: (height, width) the image is resized to (bicubic, anti-aliased)
            for segmenting, the labels resized back by nearest neighbour; None: segment at
            the image's own size.
        dilation_radius: Each mask is dilated by a disk of this radius; 0 leaves it.

    Returns:
        bool [N, H, W], the non-empty masks, scale by scale, label by label.

    Raises:
        ImportError: scikit-image is not installed (the `xrai` extra).
        ValueError: The image is not [H, W, C] finite pixels, or a parameter is out of range.
    """
    segmentation, morphology, transform = _skimage()
    pixels = _image_hwc(image)
    if not scales or any(s <= 0 for s in scales):
        raise ValueError(f"scales must be positive numbers; received {list(scales)!r}.")
    if dilation_radius < 0:
        raise ValueError(f"dilation_radius must be >= 0; received {dilation_radius}.")
    height, width = pixels.shape[:2]
    low, high = pixels.min(), pixels.max()
    # [-1, 1], the range Felzenszwalb's scales are tuned for; a constant image is all 0.
    scaled = (pixels - low) / (high - low) * 2.0 - 1.0 if high > low else np.zeros_like(pixels)
    if segmentation_size is not None:
        scaled = transform.resize(
            scaled, segmentation_size, order=3, mode="constant", preserve_range=True, anti_aliasing=True
        )
    footprint = morphology.disk(dilation_radius) if dilation_radius else None
    masks: list[np.ndarray] = []
    for scale in scales:
        labels = segmentation.felzenszwalb(scaled, scale=scale, sigma=sigma, min_size=min_segment_size)
        if segmentation_size is not None:
            labels = transform.resize(
                labels, (height, width), order=0, mode="constant", preserve_range=True, anti_aliasing=False
            ).astype(np.int64)
        for label in range(int(labels.min()), int(labels.max()) + 1):
            mask = labels == label
            if mask.any():
                masks.append(mask if footprint is None else _dilated(mask, footprint, dilation_radius, morphology))
    return np.stack(masks)


def _dilated(mask: np.ndarray, footprint: np.ndarray, radius: int, morphology: Any) -> np.ndarray:
    """`mask` dilated by `footprint`, computed on its bounding box grown by `radius` only."""
    rows, cols = np.nonzero(mask)
    top, left = max(rows.min() - radius, 0), max(cols.min() - radius, 0)
    bottom, right = min(rows.max() + radius + 1, mask.shape[0]), min(cols.max() + radius + 1, mask.shape[1])
    out = np.zeros_like(mask)
    out[top:bottom, left:right] = morphology.dilation(mask[top:bottom, left:right], footprint=footprint)
    return out


def xrai_regions(
    image: Any,
    attributions: Any,
    *,
    segments: np.ndarray | None = None,
    area_threshold: float = 1.0,
    min_pixel_diff: int = MIN_PIXEL_DIFF,
    **segment_options: Any,
) -> XraiResult:
    """XRAI's region map of one image from its attributions.

    Args:
        image: [H, W, C] (or [H, W]) pixels the attributions are of, for the segmentation.
        attributions: float [H, W, C] (or [H, W]), e.g. ``explain_xrai``'s ``attributions``.
        segments: bool [N, H, W] candidate masks; None: ``xrai_segments(image, **segment_options)``.
        area_threshold: Stop once the covered fraction of the image exceeds this, in
            [0, 1]; the rest becomes one last region (1.0: rank every mask).
        min_pixel_diff: Masks that would add fewer new pixels than this are dropped (>= 1).
        **segment_options: Passed to `xrai_segments`.

    Returns:
        The map, its [0, 1] scaling and the ranked masks (`XraiResult`).

    Raises:
        ImportError: Segments are to be computed and scikit-image is not installed.
        ValueError: Shapes do not match, values are not finite, or a parameter is out of range.
    """
    attr = np.asarray(attributions, dtype=np.float64)
    if attr.ndim == 3:
        attr = attr.max(axis=-1)  # XRAI reduces channels by their maximum
    if attr.ndim != 2 or 0 in attr.shape:
        raise ValueError(f"attributions must be [H, W, C] or [H, W]; received shape {np.shape(attributions)}.")
    if not np.all(np.isfinite(attr)):
        raise ValueError("attributions have non-finite values (NaN or inf).")
    if not 0.0 <= area_threshold <= 1.0:
        raise ValueError(f"area_threshold must be in [0, 1]; received {area_threshold!r}.")
    if min_pixel_diff < 1:
        raise ValueError(f"min_pixel_diff must be >= 1; received {min_pixel_diff!r}.")
    pixels = _image_hwc(image)
    if pixels.shape[:2] != attr.shape:
        raise ValueError(
            f"image is {pixels.shape[0]}×{pixels.shape[1]} but the attributions are "
            f"{attr.shape[0]}×{attr.shape[1]}; they must be of the same image."
        )
    if segments is None:
        segments = xrai_segments(pixels, **segment_options)
    elif segment_options:
        raise ValueError(f"segment options {sorted(segment_options)} apply only when segments is None.")
    segments = np.asarray(segments, dtype=bool)
    if segments.ndim != 3 or segments.shape[1:] != attr.shape:
        raise ValueError(f"segments must be bool [N, {attr.shape[0]}, {attr.shape[1]}]; received shape {segments.shape}.")
    return _greedy(attr, segments, area_threshold, min_pixel_diff)


def _greedy(attr: np.ndarray, segments: np.ndarray, area_threshold: float, min_pixel_diff: int) -> XraiResult:
    """The greedy ranking, with each candidate's covered count and sum kept up to date.

    Instead of re-intersecting every candidate with the covered area at each step, the
    count and attribution sum of each candidate's covered pixels are updated from the
    newly covered pixels only, so the whole ranking costs O(N × pixels).
    """
    shape = attr.shape
    flat_attr = attr.ravel()
    candidates = segments.reshape(len(segments), -1)
    size = candidates.sum(axis=1).astype(np.int64)
    total = candidates.astype(np.float64) @ flat_attr
    covered_count = np.zeros(len(candidates), np.int64)
    covered_sum = np.zeros(len(candidates), np.float64)
    alive = np.ones(len(candidates), bool)
    covered = np.zeros(flat_attr.shape, bool)
    density = np.full(flat_attr.shape, -np.inf)
    pieces: list[np.ndarray] = []
    gains: list[float] = []
    while covered.mean() <= area_threshold:
        new_count = size - covered_count
        alive &= new_count >= min_pixel_diff
        if not alive.any():
            break
        gain = np.where(alive, (total - covered_sum) / np.maximum(new_count, 1), -np.inf)
        best = int(np.argmax(gain))  # the first of equal gains, in candidate order
        piece = candidates[best] & ~covered
        density[piece] = gain[best]
        pieces.append(piece)
        gains.append(float(gain[best]))
        covered |= piece
        alive[best] = False
        newly = np.flatnonzero(piece)
        covered_count += candidates[:, newly].sum(axis=1)
        covered_sum += candidates[:, newly].astype(np.float64) @ flat_attr[newly]
    order = np.argsort(-np.asarray(gains), kind="stable")
    masks = [pieces[i] for i in order]
    ranked_gains = [gains[i] for i in order]
    rest = ~covered
    if rest.any():
        density[rest] = flat_attr[rest].mean()
        masks.append(rest)
        ranked_gains.append(float(density[rest][0]))
    region_map = density.reshape(shape)
    low, high = region_map.min(), region_map.max()
    saliency = ((region_map - low) / (high - low) if high > low else np.zeros(shape)).astype(np.float32)
    return XraiResult(
        saliency=saliency,
        density=region_map,
        masks=np.stack(masks).reshape(len(masks), *shape) if masks else np.zeros((0, *shape), bool),
        gains=np.asarray(ranked_gains, np.float64),
    )


def xrai_batch(images: Any, attributions: Any, **options: Any) -> tuple[XraiResult, ...]:
    """`xrai_regions` for each image of a batch: images [B, H, W, C], attributions [B, H, W, C]."""
    images_array, attributions_array = np.asarray(images), np.asarray(attributions)
    if images_array.ndim != 4 or attributions_array.ndim != 4 or len(images_array) != len(attributions_array):
        raise ValueError(
            "xrai_batch takes images and attributions [B, H, W, C] of the same batch; received shapes "
            f"{images_array.shape} and {attributions_array.shape}."
        )
    return tuple(xrai_regions(im, at, **options) for im, at in zip(images_array, attributions_array, strict=True))


def _pixels_of(images: Any, shape: tuple[int, int, int]) -> np.ndarray:
    """The pixels of what the client sent: a pixel array, or encoded images decoded by Pillow."""
    height, width, channels = shape
    if isinstance(images, np.ndarray) and images.dtype.kind in "biuf":
        if images.ndim == 4:
            return images
        if images.ndim == 3 and images.shape[:2] == (height, width):
            return images[None]  # one image [H, W, C]
        if images.ndim == 3 and images.shape[1:] == (height, width):
            return images[..., None]  # a batch of [H, W] (one channel)
        if images.ndim == 2:
            return images[None, :, :, None]
        raise ValueError(
            f"images must be pixels [B, H, W, C], [H, W, C], [B, H, W] or [H, W] of the model's "
            f"{height}×{width}; received shape {images.shape}."
        )
    single = isinstance(images, (str, bytes, bytearray, memoryview, os.PathLike)) or hasattr(images, "convert")
    items = [images] if single else list(images)
    decoded = []
    for index, item in enumerate(items):
        if not isinstance(item, (str, bytes, bytearray, memoryview, np.bytes_, os.PathLike)) and not hasattr(item, "convert"):
            array = np.asarray(item)
            if array.dtype.kind in "biuf":
                decoded.append(array if array.ndim == 3 else array[..., None])
                continue
        from PIL import Image  # noqa: PLC0415 - only encoded images need Pillow

        if isinstance(item, (str, os.PathLike)):
            image = Image.open(Path(item))
        elif isinstance(item, (bytes, bytearray, memoryview, np.bytes_)):
            image = Image.open(io.BytesIO(bytes(item)))
        elif hasattr(item, "convert"):
            image = item
        else:
            raise ValueError(f"image {index} is neither pixels nor an encoded image; received {type(item).__name__}.")
        if image.size != (width, height):
            raise ValueError(
                f"image {index} decodes to {image.size[1]}×{image.size[0]} but the model takes {height}×{width}: "
                "the export resizes it in the graph (bilinear), which Pillow does not reproduce exactly. "
                f"Send it resized to {height}×{width}, or pass the pixels the model saw."
            )
        pixels = np.asarray(image.convert("L" if channels == 1 else "RGB"))
        decoded.append(pixels[:, :, None] if pixels.ndim == 2 else pixels)
    return np.stack(decoded)


def xrai_explanation(explanation: Explanation, images: Any, **options: Any) -> Explanation:
    """An ``explain_xrai`` answer with XRAI's region map as its ``saliency``.

    Args:
        explanation: What ``ServingClient.explain(images, method="xrai")`` returned (its
            ``attributions`` [B, H, W, C] are XRAI's IG).
        images: The images sent: [B, H, W, C] (or [H, W, C]) pixels in any numeric dtype
            (uint8 pixels and the model's float input segment alike: the segmentation
            min-max scales them), or for ``image_bytes`` exports the encoded images, paths
            or PIL images, decoded with Pillow (they must already be the model's H×W).
        **options: Passed to `xrai_regions` (``area_threshold``, ``min_pixel_diff``, the
            segmentation options).

    Returns:
        The explanation with ``saliency`` the region maps [B, H, W] in [0, 1] ([B, K, H, W]
        for an explanation with a class axis, each class column segmented by its own IG), and in
        ``extras`` also ``pixel_saliency`` (the served IG map), ``xrai_density`` float32
        [B, H, W] (the unscaled map) and ``xrai_ranks`` int32 [B, H, W] (the ranked masks:
        ``xrai_ranks[b] == 1`` is image b's most important region).

    Raises:
        ImportError: scikit-image is not installed (the `xrai` extra).
        ValueError: The explanation has no attributions (not ``explain_xrai``), or the
            images do not match them.
    """
    if explanation.attributions is None:
        raise ValueError(
            f"The explanation from signature {explanation.signature_name!r} has no attributions; XRAI's "
            f"regions are computed from those of {contract.signature_name('xrai')!r}."
        )
    count = explanation.classes_per_image
    if count is not None:
        # A class axis (classes= / top_k=): the regions of each class column, stacked on axis 1.
        parts = [xrai_explanation(explanation.for_class(k), images, **options) for k in range(count)]
        extras = dict(explanation.extras)
        extras["pixel_saliency"] = explanation.saliency
        for key in ("xrai_density", "xrai_ranks"):
            extras[key] = np.stack([part.extras[key] for part in parts], axis=1)
        return dataclasses.replace(
            explanation, saliency=np.stack([part.saliency for part in parts], axis=1), extras=extras
        )
    attributions = np.asarray(explanation.attributions)
    shape = (int(attributions.shape[1]), int(attributions.shape[2]), int(attributions.shape[3]))
    pixels = _pixels_of(images, shape)
    if pixels.shape[0] != attributions.shape[0] or pixels.shape[1:3] != attributions.shape[1:3]:
        raise ValueError(
            f"images {pixels.shape} do not match the explanation's attributions {attributions.shape} "
            "(same batch and H×W expected): pass the images that were explained."
        )
    results = xrai_batch(pixels, attributions, **options)
    extras = dict(explanation.extras)
    extras["pixel_saliency"] = explanation.saliency
    extras["xrai_density"] = np.stack([r.density for r in results]).astype(np.float32)
    extras["xrai_ranks"] = np.stack([r.ranks for r in results])
    return dataclasses.replace(
        explanation, saliency=np.stack([r.saliency for r in results]), extras=extras
    )
