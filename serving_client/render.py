"""Draw saliency maps and load images with Pillow and numpy only (no matplotlib, no TensorFlow).

Pillow is imported inside the functions that need it, so ``import serving_client`` stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._colormaps import COLORMAPS, DIVERGING, MAGNITUDE, lookup_table

__all__ = [
    "COLORMAPS",
    "DIVERGING",
    "MAGNITUDE",
    "OVERLAY_ALIASES",
    "OVERLAY_TYPES",
    "POLARITIES",
    "VISUALIZATION_TYPES",
    "grid",
    "heatmap",
    "load_image",
    "outline",
    "overlay",
    "save_png",
    "scale_map",
    "signed_map",
]

#: Which sign of a map is drawn: as Vertex Explainable AI's ``polarity``.
POLARITIES = ("positive", "negative", "both")
#: How the map is combined with the image: as Vertex Explainable AI's ``overlay_type``.
OVERLAY_TYPES = ("original", "grayscale", "mask_black", "none")
#: Former names, still accepted: ``"mask"`` was ``"mask_black"`` before Vertex's names.
OVERLAY_ALIASES = {"mask": "mask_black"}
#: Per-pixel colors, or the outlines of the regions that pass the clip bounds: as Vertex
#: Explainable AI's visualization ``type`` (``PIXELS``, ``OUTLINES``).
VISUALIZATION_TYPES = ("pixels", "outlines")

_IMAGE_SUFFIXES_NUMPY = (".npy",)
_LUMA = np.asarray([0.299, 0.587, 0.114], dtype=np.float32)
# The structuring element of the outlines' cleanup and boundary: the 8-neighbourhood.
_OUTLINE_SIZE = 3


def heatmap(saliency: np.ndarray, *, colormap: str = "inferno") -> np.ndarray:
    """Color a saliency map.

    Args:
        saliency: ``[H, W]`` with values in ``[0, 1]`` (values outside are clipped).
        colormap: one of ``"inferno"``, ``"viridis"``, ``"jet"``, ``"gray"``.

    Returns:
        uint8 ``[H, W, 3]``. An all-zero map gives the colormap's lowest color everywhere.

    Raises:
        ValueError: if the map is not 2-D, contains NaN, or the colormap is unknown.
    """
    values = _as_saliency(saliency)
    table = lookup_table(colormap)
    indices = np.rint(np.clip(values, 0.0, 1.0) * 255).astype(np.intp)
    return table[indices]


def signed_map(attributions: np.ndarray) -> np.ndarray:
    """Reduce signed per-channel attributions (e.g. IG's ``attributions``) to a signed map.

    Channels are summed, so a pixel's value is its total contribution to the logit (IG's
    completeness holds for the map too) and positive and negative evidence keep their sign.

    Args:
        attributions: ``[H, W, C]`` (or an already reduced ``[H, W]``), finite.

    Returns:
        float32 ``[H, W]``, signed.

    Raises:
        ValueError: for another rank, or NaN/Inf values.
    """
    values = np.asarray(attributions, dtype=np.float32)
    if values.ndim == 3:
        values = values.sum(axis=-1, dtype=np.float32)
    if values.ndim != 2:
        raise ValueError(
            f"attributions must be [H, W, C] (one image) or [H, W]; got shape {values.shape}. "
            "Index the batch first, e.g. explanation.attributions[0]."
        )
    if not np.isfinite(values).all():
        raise ValueError("attributions contain NaN or Inf; expected finite values.")
    return values


def scale_map(
    values: np.ndarray,
    *,
    polarity: str = "positive",
    clip_percentiles: tuple[float, float] = (0.0, 100.0),
) -> np.ndarray:
    """Select a sign of a map and scale it for display, with percentile clipping.

    ``"positive"`` keeps the values above 0, ``"negative"`` the magnitude of those below 0
    (both give ``[0, 1]``); ``"both"`` keeps the sign and gives ``[-1, 1]``. The magnitudes
    ``m`` are then mapped to ``clip((m - floor) / (ceiling - floor), 0, 1)``, where ``ceiling``
    is the ``high`` percentile of ``m`` (its maximum at 100) and ``floor`` the ``low``
    percentile (``0`` at ``low = 0``, not the minimum), so values below ``low`` are hidden and
    a few hot pixels above ``high`` do not wash out the rest. An all-zero map stays zero.

    Args:
        values: ``[H, W]``, finite; signed or in ``[0, 1]``.
        polarity: one of :data:`POLARITIES`.
        clip_percentiles: ``(low, high)`` with ``0 <= low < high <= 100``.

    Returns:
        float32 ``[H, W]``: in ``[0, 1]``, or ``[-1, 1]`` for ``"both"``.

    Raises:
        ValueError: for a map that is not 2-D or has NaN, an unknown polarity, or bad
            percentiles.
    """
    values = _as_saliency(values)
    if polarity not in POLARITIES:
        raise ValueError(f"Unknown polarity {polarity!r}; expected one of {', '.join(POLARITIES)}.")
    low, high = _check_percentiles(clip_percentiles)
    if polarity == "positive":
        magnitude = np.clip(values, 0.0, None)
    elif polarity == "negative":
        magnitude = np.clip(-values, 0.0, None)
    else:
        magnitude = np.abs(values)
    ceiling = float(np.percentile(magnitude, high)) if high < 100 else float(magnitude.max(initial=0.0))
    floor = float(np.percentile(magnitude, low)) if low > 0 else 0.0
    if ceiling > floor:
        scaled = np.clip((magnitude - floor) / (ceiling - floor), 0.0, 1.0)
    else:
        # Flat above the floor (e.g. a constant map): show what reaches it, never divide by 0.
        scaled = ((magnitude >= ceiling) & (ceiling > 0)).astype(np.float32)
    if polarity == "both":
        scaled = np.sign(values) * scaled
    return scaled.astype(np.float32)


def overlay(
    image: np.ndarray,
    saliency: np.ndarray,
    *,
    colormap: str | None = None,
    alpha: float = 0.5,
    clip_percentile: float | None = None,
    clip_percentiles: tuple[float, float] | None = None,
    polarity: str = "positive",
    overlay_type: str = "original",
    visualization_type: str = "pixels",
) -> np.ndarray:
    """Blend a colored saliency map over its image, or outline its strongest regions.

    The map goes through :func:`scale_map` (its maximum becomes 1, negative values count as
    0 unless ``polarity`` says otherwise); clip percentiles keep a few hot pixels from
    washing out the rest, and hide the weakest values.

    Args:
        image: ``[H, W]``, ``[H, W, 1]`` or ``[H, W, 3]``; float in ``[0, 1]`` or uint8.
        saliency: ``[H, W]``, same H and W as the image: a map in ``[0, 1]`` or a signed one
            (see :func:`signed_map`).
        colormap: see :func:`heatmap`; default ``"inferno"``, or ``"pink_green"`` (pink
            negative, gray zero, green positive) for ``polarity="both"``. A diverging map
            (:data:`DIVERGING`) draws a positive map with its upper half (green) and a
            negative one with its lower half (pink); :data:`MAGNITUDE` maps (``red``,
            ``green``) color both signs alike.
        alpha: weight of the heatmap, in ``[0, 1]``.
        clip_percentile: e.g. ``99``, same as ``clip_percentiles=(0, 99)``; kept for
            compatibility.
        clip_percentiles: ``(low, high)``, e.g. ``(70, 99.9)``; default ``(0, 100)``.
        polarity: ``"positive"``, ``"negative"`` or ``"both"`` (see :func:`scale_map`).
        overlay_type: ``"original"`` blends over the image; ``"grayscale"`` over its luma,
            so the colors stand out; ``"mask_black"`` (or ``"mask"``) shows the image only
            where the map is high (each pixel times the scaled magnitude; ``colormap`` and
            ``alpha`` are unused with pixels); ``"none"`` draws the colored map alone.
        visualization_type: ``"pixels"`` colors every pixel by its value; ``"outlines"``
            draws the boundary of the regions that pass the clip bounds (see
            :func:`outline`) in the colormap's color of their sign, over the image as
            ``overlay_type`` says (``alpha`` unused).

    Returns:
        uint8 ``[H, W, 3]``.

    Raises:
        ValueError: for mismatched shapes, NaN, an unknown option, ``alpha`` or percentiles
            out of range, or both ``clip_percentile`` and ``clip_percentiles``.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1]; got {alpha!r}.")
    overlay_type = OVERLAY_ALIASES.get(overlay_type, overlay_type)
    if overlay_type not in OVERLAY_TYPES:
        raise ValueError(
            f"Unknown overlay_type {overlay_type!r}; expected one of {', '.join(OVERLAY_TYPES)}."
        )
    if clip_percentile is not None and clip_percentiles is not None:
        raise ValueError(
            "Pass clip_percentile or clip_percentiles, not both; clip_percentile=P is "
            "clip_percentiles=(0, P)."
        )
    if clip_percentile is not None:
        if not 0.0 < clip_percentile <= 100.0:
            raise ValueError(f"clip_percentile must be in (0, 100]; got {clip_percentile!r}.")
        clip_percentiles = (0.0, clip_percentile)
    rgb = _as_rgb_float(image)
    values = _as_saliency(saliency)
    if values.shape != rgb.shape[:2]:
        raise ValueError(
            f"saliency shape {values.shape} does not match the image's height and width "
            f"{rgb.shape[:2]}."
        )
    if visualization_type not in VISUALIZATION_TYPES:
        raise ValueError(
            f"Unknown visualization_type {visualization_type!r}; expected one of "
            f"{', '.join(VISUALIZATION_TYPES)}."
        )
    scaled = scale_map(values, polarity=polarity, clip_percentiles=clip_percentiles or (0.0, 100.0))
    if colormap is None:
        colormap = "pink_green" if polarity == "both" else "inferno"
    lookup_table(colormap)  # an unknown name is refused before any drawing
    if overlay_type == "mask_black":
        base = rgb * np.abs(scaled)[..., np.newaxis]
    elif overlay_type == "grayscale":
        base = np.repeat((rgb @ _LUMA)[..., np.newaxis], 3, axis=2)
    elif overlay_type == "none":
        base = np.zeros_like(rgb)
    else:
        base = rgb
    if visualization_type == "outlines":
        return _to_uint8_rgb(np.clip(_draw_outlines(base, scaled, polarity, colormap), 0.0, 1.0))
    if overlay_type == "mask_black":
        return _to_uint8_rgb(np.clip(base, 0.0, 1.0))
    colors = heatmap(_color_positions(scaled, polarity, colormap), colormap=colormap)
    colors = colors.astype(np.float32) / 255.0
    if overlay_type == "none":
        return _to_uint8_rgb(colors)
    blended = (1.0 - alpha) * base + alpha * colors
    return _to_uint8_rgb(np.clip(blended, 0.0, 1.0))


def outline(region: np.ndarray) -> np.ndarray:
    """The boundary pixels of a region mask, after removing specks thinner than 3 pixels.

    The cleanup is a binary opening (erosion then dilation) with a 3×3 square; the boundary
    is what the same erosion removes from the opened region (its inner 8-connected rim).
    Outside the image counts as background, so a region that touches an edge is outlined
    along it. Numpy only (shifted views of a padded array), no SciPy.

    Args:
        region: ``[H, W]`` bool (or values, nonzero = in the region).

    Returns:
        bool ``[H, W]``: True on the boundary of the cleaned region.

    Raises:
        ValueError: if the mask is not 2-D.
    """
    mask = np.asarray(region).astype(bool)
    if mask.ndim != 2:
        raise ValueError(f"region must be a [H, W] mask; got shape {mask.shape}.")
    opened = _dilate(_erode(mask))
    return opened & ~_erode(opened)


def _erode(mask: np.ndarray) -> np.ndarray:
    height, width = mask.shape
    padded = np.pad(mask, _OUTLINE_SIZE // 2, constant_values=False)
    out = np.ones_like(mask)
    for dy in range(_OUTLINE_SIZE):
        for dx in range(_OUTLINE_SIZE):
            out &= padded[dy : dy + height, dx : dx + width]
    return out


def _dilate(mask: np.ndarray) -> np.ndarray:
    height, width = mask.shape
    padded = np.pad(mask, _OUTLINE_SIZE // 2, constant_values=False)
    out = np.zeros_like(mask)
    for dy in range(_OUTLINE_SIZE):
        for dx in range(_OUTLINE_SIZE):
            out |= padded[dy : dy + height, dx : dx + width]
    return out


def _color_positions(scaled: np.ndarray, polarity: str, colormap: str) -> np.ndarray:
    """Where in the colormap each pixel's color is, in [0, 1]."""
    if colormap in DIVERGING:
        signed = -scaled if polarity == "negative" else scaled
        return (signed + 1.0) / 2.0  # zero at the neutral middle
    if polarity == "both" and colormap not in MAGNITUDE:
        return (scaled + 1.0) / 2.0  # a signed map [-1, 1] uses the whole colormap
    return np.abs(scaled)


def _draw_outlines(base: np.ndarray, scaled: np.ndarray, polarity: str, colormap: str) -> np.ndarray:
    """``base`` with the outline of each sign's region (magnitude above the floor) drawn on it."""
    table = lookup_table(colormap).astype(np.float32) / 255.0
    out = base.copy()
    signs = {"positive": (1.0,), "negative": (-1.0,), "both": (1.0, -1.0)}[polarity]
    for sign in signs:
        # scale_map gives the negative polarity's magnitude as positive values.
        region = (scaled > 0) if polarity == "negative" else (sign * scaled > 0)
        value = sign if polarity != "negative" else 1.0
        position = float(_color_positions(np.asarray([[value]]), polarity, colormap)[0, 0])
        out[outline(region)] = table[int(np.rint(position * 255))]
    return out


def grid(
    cells: list[list[np.ndarray]],
    *,
    labels: list[str] | None = None,
    scale: int = 4,
    pad: int = 2,
    column_labels: list[str] | None = None,
) -> np.ndarray:
    """Tile images into rows, upscaled with nearest neighbour, with optional row/column labels.

    Args:
        cells: rows of cells; each cell ``[H, W]``, ``[H, W, 1]`` or ``[H, W, 3]``, float in
            ``[0, 1]`` or uint8. Cells may differ in size; each gets the largest cell's slot.
        labels: one text per row, drawn left of the row with Pillow's default font.
        scale: integer upscale factor (>= 1).
        pad: pixels of white between cells and around the grid (>= 0).
        column_labels: one text per column, drawn above it (a column is widened to fit).

    Returns:
        uint8 ``[height, width, 3]``.

    Raises:
        ValueError: for an empty grid, a label count that differs from the row or column
            count, or bad ``scale``/``pad``.
    """
    if not cells or not any(cells):
        raise ValueError("grid needs at least one row with at least one cell; got none.")
    if labels is not None and len(labels) != len(cells):
        raise ValueError(f"grid got {len(labels)} labels for {len(cells)} rows; expected one per row.")
    columns = max(len(row) for row in cells)
    if column_labels is not None and len(column_labels) != columns:
        raise ValueError(
            f"grid got {len(column_labels)} column labels for {columns} columns; expected one "
            "per column."
        )
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be an integer >= 1; got {scale!r}.")
    if int(pad) != pad or pad < 0:
        raise ValueError(f"pad must be an integer >= 0; got {pad!r}.")
    scale, pad = int(scale), int(pad)

    rows = [[_to_uint8_rgb(_as_rgb_float(cell)) for cell in row] for row in cells]
    rows = [[cell.repeat(scale, axis=0).repeat(scale, axis=1) for cell in row] for row in rows]
    cell_h = max(cell.shape[0] for row in rows for cell in row)
    cell_w = max(cell.shape[1] for row in rows for cell in row)

    label_w = header_h = 0
    font = None
    if labels or column_labels:
        from PIL import ImageFont

        font = ImageFont.load_default()
    if labels and font is not None:
        label_w = max(int(np.ceil(font.getlength(text))) for text in labels) + 2 * pad
    if column_labels and font is not None:
        cell_w = max(cell_w, *(int(np.ceil(font.getlength(text))) + pad for text in column_labels))
        header_h = _text_height(font, column_labels) + 2 * pad

    height = header_h + pad + len(rows) * (cell_h + pad)
    width = label_w + pad + columns * (cell_w + pad)
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    for r, row in enumerate(rows):
        top = header_h + pad + r * (cell_h + pad)
        for c, cell in enumerate(row):
            left = label_w + pad + c * (cell_w + pad)
            canvas[top : top + cell.shape[0], left : left + cell.shape[1]] = cell

    if font is not None:
        from PIL import Image, ImageDraw

        picture = Image.fromarray(canvas)
        draw = ImageDraw.Draw(picture)
        for r, text in enumerate(labels or []):
            top = header_h + pad + r * (cell_h + pad)
            draw.text((pad, top + cell_h // 2), text, fill=(0, 0, 0), font=font, anchor="lm")
        for c, text in enumerate(column_labels or []):
            left = label_w + pad + c * (cell_w + pad)
            draw.text((left + cell_w // 2, pad + header_h // 2), text, fill=(0, 0, 0), font=font, anchor="mm")
        canvas = np.asarray(picture).copy()
    return canvas


def _text_height(font: Any, texts: list[str]) -> int:
    boxes = [font.getbbox(text) for text in texts if text]
    return max((box[3] - box[1] for box in boxes), default=0)


def save_png(array: np.ndarray, path: str | Path) -> Path:
    """Write ``array`` as a PNG, creating parent directories.

    Args:
        array: ``[H, W]``, ``[H, W, 1]`` or ``[H, W, 3]``; uint8, or float in ``[0, 1]``.
        path: where to write.

    Returns:
        The path written.

    Raises:
        ValueError: for an unsupported shape or NaN values.
    """
    from PIL import Image

    path = Path(path)
    pixels = _to_uint8_rgb(_as_rgb_float(array))
    if np.ndim(array) == 2:
        pixels = pixels[..., 0]  # keep grayscale files grayscale
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="PNG")
    return path


def load_image(
    path: str | Path, *, expected_shape: tuple[int, int, int] | None = None
) -> np.ndarray:
    """Load an image file as the float32 ``[H, W, C]`` array a model takes.

    Rules: PNG/JPEG (anything Pillow reads) are scaled to ``[0, 1]`` by dividing by 255.
    ``.npy`` files keep float values as they are; uint8 is divided by 255; other integers and
    bools are cast to float32; ``[H, W]`` becomes ``[H, W, 1]``. With ``expected_shape``,
    channels are converted (RGB → gray with ITU-R 601 luma weights, gray → RGB by
    repetition, alpha dropped) and the image is resized bilinearly to ``H x W`` if needed.

    Args:
        path: a ``.npy`` file or an image file.
        expected_shape: ``(H, W, C)`` with ``C`` 1 or 3 to convert to; ``None`` keeps the
            file's size and channels (grayscale files give ``C = 1``, others ``C = 3``).

    Returns:
        float32 ``[H, W, C]``.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if the file is corrupt or unreadable, or cannot be converted to
            ``expected_shape``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Image file {str(path)!r} does not exist.")
    if expected_shape is not None:
        if len(expected_shape) != 3 or expected_shape[2] not in (1, 3):
            raise ValueError(
                f"expected_shape must be (H, W, C) with C 1 or 3; got {expected_shape!r}."
            )
    if path.suffix.lower() in _IMAGE_SUFFIXES_NUMPY:
        array = _read_npy(path)
    else:
        array = _read_picture(path, None if expected_shape is None else expected_shape[2])
    if expected_shape is not None:
        array = _convert_channels(array, expected_shape[2], path)
        array = _resize(array, expected_shape[0], expected_shape[1])
    return np.ascontiguousarray(array, dtype=np.float32)


# -- helpers -----------------------------------------------------------------------------------


def _as_saliency(saliency: Any) -> np.ndarray:
    values = np.asarray(saliency, dtype=np.float32)
    if values.ndim != 2:
        raise ValueError(f"saliency must be a [H, W] map; got shape {values.shape}.")
    if np.isnan(values).any():
        raise ValueError("saliency contains NaN; expected finite values in [0, 1].")
    return values


def _check_percentiles(clip_percentiles: Any) -> tuple[float, float]:
    try:
        low, high = (float(value) for value in clip_percentiles)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"clip_percentiles must be (low, high); got {clip_percentiles!r}."
        ) from error
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(
            f"clip_percentiles must satisfy 0 <= low < high <= 100; got ({low:g}, {high:g})."
        )
    return low, high


def _as_rgb_float(image: Any) -> np.ndarray:
    """[H,W], [H,W,1] or [H,W,3]; uint8 or float [0,1] → float32 [H,W,3] in [0,1]."""
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        array = np.repeat(array[..., np.newaxis], 3, axis=2)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"image must be [H, W], [H, W, 1] or [H, W, 3]; got shape {array.shape}.")
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype.kind not in "biuf":
        raise ValueError(f"image must be uint8 or float in [0, 1]; got dtype {array.dtype}.")
    floats = array.astype(np.float32)
    if np.isnan(floats).any():
        raise ValueError("image contains NaN; expected values in [0, 1].")
    return np.clip(floats, 0.0, 1.0)


def _to_uint8_rgb(rgb: np.ndarray) -> np.ndarray:
    return np.rint(rgb * 255).astype(np.uint8)


def _read_npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"Cannot read {str(path)!r} as a .npy array: {error}") from error
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{str(path)!r} holds dtype {array.dtype}; expected a numeric image.")
    if array.ndim == 2:
        array = array[..., np.newaxis]
    if array.ndim != 3:
        raise ValueError(f"{str(path)!r} holds shape {array.shape}; expected [H, W] or [H, W, C].")
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    return array.astype(np.float32)


def _read_picture(path: Path, channels: int | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as picture:
            picture.load()
            if channels is None:
                gray = picture.mode in ("1", "L", "LA", "I", "I;16", "F")
                channels = 1 if gray else 3
            converted = picture.convert("L" if channels == 1 else "RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"Cannot read {str(path)!r} as an image: {error}") from error
    array = np.asarray(converted, dtype=np.float32) / 255.0
    return array[..., np.newaxis] if array.ndim == 2 else array


def _convert_channels(array: np.ndarray, channels: int, path: Path) -> np.ndarray:
    have = array.shape[2]
    if have == channels:
        return array
    if have == 4:
        array, have = array[..., :3], 3
        if channels == 3:
            return array
    if have == 3 and channels == 1:
        return (array @ _LUMA)[..., np.newaxis]
    if have == 1 and channels == 3:
        return np.repeat(array, 3, axis=2)
    raise ValueError(f"{str(path)!r} has {have} channels; cannot convert to {channels}.")


def _resize(array: np.ndarray, height: int, width: int) -> np.ndarray:
    if array.shape[:2] == (height, width):
        return array
    from PIL import Image

    # Resize each channel as a float ("F") image so values outside [0, 1] survive.
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(array[..., c], dtype=np.float32)).resize(
                (width, height), Image.Resampling.BILINEAR
            )
        )
        for c in range(array.shape[2])
    ]
    return np.stack(channels, axis=-1)
