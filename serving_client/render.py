"""Draw saliency maps and load images with Pillow and numpy only (no matplotlib, no TensorFlow).

Pillow is imported inside the functions that need it, so ``import serving_client`` stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._colormaps import COLORMAPS, lookup_table

__all__ = ["COLORMAPS", "grid", "heatmap", "load_image", "overlay", "save_png"]

_IMAGE_SUFFIXES_NUMPY = (".npy",)


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


def overlay(
    image: np.ndarray,
    saliency: np.ndarray,
    *,
    colormap: str = "inferno",
    alpha: float = 0.5,
    clip_percentile: float | None = None,
) -> np.ndarray:
    """Blend a colored saliency map over its image.

    The map is renormalized so its maximum is 1 (negative values count as 0); with
    ``clip_percentile`` the values above that percentile are clipped first, so a few hot
    pixels do not wash out the rest.

    Args:
        image: ``[H, W]``, ``[H, W, 1]`` or ``[H, W, 3]``; float in ``[0, 1]`` or uint8.
        saliency: ``[H, W]``, same H and W as the image.
        colormap: see :func:`heatmap`.
        alpha: weight of the heatmap, in ``[0, 1]``.
        clip_percentile: e.g. ``99``; ``None`` to keep the map's own maximum.

    Returns:
        uint8 ``[H, W, 3]``.

    Raises:
        ValueError: for mismatched shapes, NaN, ``alpha`` or ``clip_percentile`` out of range.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1]; got {alpha!r}.")
    rgb = _as_rgb_float(image)
    values = np.clip(_as_saliency(saliency), 0.0, None)
    if values.shape != rgb.shape[:2]:
        raise ValueError(
            f"saliency shape {values.shape} does not match the image's height and width "
            f"{rgb.shape[:2]}."
        )
    if clip_percentile is not None:
        if not 0.0 < clip_percentile <= 100.0:
            raise ValueError(f"clip_percentile must be in (0, 100]; got {clip_percentile!r}.")
        ceiling = float(np.percentile(values, clip_percentile))
    else:
        ceiling = float(values.max(initial=0.0))
    # An all-zero (or clipped-to-zero) map stays zero rather than dividing by zero.
    normalized = np.minimum(values, ceiling) / ceiling if ceiling > 0 else np.zeros_like(values)
    colors = heatmap(normalized, colormap=colormap).astype(np.float32) / 255.0
    blended = (1.0 - alpha) * rgb + alpha * colors
    return np.rint(np.clip(blended, 0.0, 1.0) * 255).astype(np.uint8)


def grid(
    cells: list[list[np.ndarray]],
    *,
    labels: list[str] | None = None,
    scale: int = 4,
    pad: int = 2,
) -> np.ndarray:
    """Tile images into rows, upscaled with nearest neighbour, with an optional label per row.

    Args:
        cells: rows of cells; each cell ``[H, W]``, ``[H, W, 1]`` or ``[H, W, 3]``, float in
            ``[0, 1]`` or uint8. Cells may differ in size; each gets the largest cell's slot.
        labels: one text per row, drawn left of the row with Pillow's default font.
        scale: integer upscale factor (>= 1).
        pad: pixels of white between cells and around the grid (>= 0).

    Returns:
        uint8 ``[height, width, 3]``.

    Raises:
        ValueError: for an empty grid, a label count that differs from the row count, or
            bad ``scale``/``pad``.
    """
    if not cells or not any(cells):
        raise ValueError("grid needs at least one row with at least one cell; got none.")
    if labels is not None and len(labels) != len(cells):
        raise ValueError(f"grid got {len(labels)} labels for {len(cells)} rows; expected one per row.")
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be an integer >= 1; got {scale!r}.")
    if int(pad) != pad or pad < 0:
        raise ValueError(f"pad must be an integer >= 0; got {pad!r}.")
    scale, pad = int(scale), int(pad)

    rows = [[_to_uint8_rgb(_as_rgb_float(cell)) for cell in row] for row in cells]
    rows = [[cell.repeat(scale, axis=0).repeat(scale, axis=1) for cell in row] for row in rows]
    cell_h = max(cell.shape[0] for row in rows for cell in row)
    cell_w = max(cell.shape[1] for row in rows for cell in row)
    columns = max(len(row) for row in rows)

    label_w = 0
    font = None
    if labels:
        from PIL import ImageFont

        font = ImageFont.load_default()
        label_w = max(int(np.ceil(font.getlength(text))) for text in labels) + 2 * pad

    height = pad + len(rows) * (cell_h + pad)
    width = label_w + pad + columns * (cell_w + pad)
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    for r, row in enumerate(rows):
        top = pad + r * (cell_h + pad)
        for c, cell in enumerate(row):
            left = label_w + pad + c * (cell_w + pad)
            canvas[top : top + cell.shape[0], left : left + cell.shape[1]] = cell

    if labels and font is not None:
        from PIL import Image, ImageDraw

        picture = Image.fromarray(canvas)
        draw = ImageDraw.Draw(picture)
        for r, text in enumerate(labels):
            top = pad + r * (cell_h + pad)
            draw.text((pad, top + cell_h // 2), text, fill=(0, 0, 0), font=font, anchor="lm")
        canvas = np.asarray(picture).copy()
    return canvas


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
        luma = np.asarray([0.299, 0.587, 0.114], dtype=np.float32)
        return (array @ luma)[..., np.newaxis]
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
