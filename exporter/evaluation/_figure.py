"""The evaluation figure, drawn with Pillow (no matplotlib): deletion and insertion
curves per method beside the random order, and the randomization cascade as a grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from exporter.evaluation._report import EvaluationReport

__all__ = ["draw_figure"]

_PALETTE = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (23, 190, 207)]
_RANDOM = (128, 128, 128)
_CELL = 72
_PAD = 12


def _to_image(array: np.ndarray, size: int) -> Image.Image:
    """[H,W] or [H,W,C] in any range → an RGB tile (min-max scaled; constant → black)."""
    a = np.asarray(array, np.float64)
    if a.ndim == 3:
        a = a.mean(axis=-1) if a.shape[-1] != 3 else a
    low, high = float(a.min()), float(a.max())
    a = (a - low) / (high - low) if high > low else np.zeros_like(a)
    tile = Image.fromarray((a * 255).round().astype(np.uint8))
    return tile.convert("RGB").resize((size, size), Image.Resampling.NEAREST)


def _heat(saliency: np.ndarray, size: int) -> Image.Image:
    """A [0,1] map as a black → red → yellow heat tile (no colormap library)."""
    s = np.clip(np.nan_to_num(np.asarray(saliency, np.float64)), 0.0, 1.0)
    rgb = np.stack([np.clip(2 * s, 0, 1), np.clip(2 * s - 1, 0, 1), np.zeros_like(s)], axis=-1)
    return Image.fromarray((rgb * 255).round().astype(np.uint8)).resize((size, size), Image.Resampling.NEAREST)


def _chart(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], title: str,
           curves: list[tuple[str, tuple[float, ...], tuple[int, int, int], float]],
           font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> None:
    """Axes [0,1]×[0,1] in `box`, one polyline per curve, a legend with the AUCs."""
    left, top, right, bottom = box
    x0, y0, x1, y1 = left + 34, top + 18, right - 8, bottom - 26
    draw.text((left + 34, top), title, fill="black", font=font)
    draw.rectangle((x0, y0, x1, y1), outline="black")
    for tick in (0.0, 0.5, 1.0):
        y = y1 - tick * (y1 - y0)
        x = x0 + tick * (x1 - x0)
        draw.line((x0 - 3, y, x0, y), fill="black")
        draw.text((left + 4, y - 6), f"{tick:.1f}", fill="black", font=font)
        draw.line((x, y1, x, y1 + 3), fill="black")
        draw.text((x - 8, y1 + 5), f"{int(tick * 100)}%", fill="black", font=font)
    draw.text((x0 + (x1 - x0) // 2 - 40, y1 + 14), "fraction of pixels", fill="black", font=font)
    for i, (name, values, colour, area) in enumerate(curves):
        n = len(values) - 1
        points = [(x0 + k / n * (x1 - x0), y1 - float(np.clip(v, 0, 1)) * (y1 - y0)) for k, v in enumerate(values)]
        draw.line(points, fill=colour, width=2)
        ly = y0 + 4 + 12 * i
        draw.line((x1 - 150, ly + 6, x1 - 136, ly + 6), fill=colour, width=2)
        draw.text((x1 - 132, ly), f"{name[:16]} {area:.3f}", fill=colour, font=font)


def draw_figure(report: EvaluationReport, path: str | Path) -> Path:
    """Draws the report's figure as a PNG.

    Top: mean deletion and insertion curves (target probability vs fraction of pixels
    removed/added) for every method and the random order, AUC in the legend. Bottom:
    for the first image, each method's original map then its map after each cascade
    step (top layer first), with the mean Spearman |maps| correlation under each.

    Args:
        report: An `EvaluationReport`.
        path: The PNG to write (parent directories created).

    Returns:
        The path.
    """
    font = ImageFont.load_default()
    steps = max((len(m.randomization) for m in report.methods), default=0)
    grid_cols = 2 + steps
    grid_width = _PAD + 130 + grid_cols * (_CELL + 6)
    width = max(2 * 380 + 3 * _PAD, grid_width + _PAD)
    chart_height = 260
    row_height = _CELL + 30
    height = _PAD + chart_height + 40 + 30 + row_height * max(1, len(report.methods)) + _PAD
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)

    colours = {m.method: _PALETTE[i % len(_PALETTE)] for i, m in enumerate(report.methods)}
    for k, (title, key) in enumerate((("Deletion (lower AUC is better)", "deletion"), ("Insertion (higher AUC is better)", "insertion"))):
        curves = [
            (m.method, getattr(m.scores, f"{key}_curve"), colours[m.method], getattr(m.scores, f"{key}_auc"))
            for m in report.methods
        ]
        curves.append(("random", getattr(report.random, f"{key}_curve"), _RANDOM, getattr(report.random, f"{key}_auc")))
        left = _PAD + k * (380 + _PAD)
        _chart(draw, (left, _PAD, left + 380, _PAD + chart_height), title, curves, font)

    top = _PAD + chart_height + 30
    draw.text((_PAD, top - 14), f"Randomization cascade ({report.num_images} images; "
              "rho = mean Spearman of |maps| vs the trained model)", fill="black", font=font)
    header_y = top
    x_first = _PAD + 130
    draw.text((x_first, header_y), "input", fill="black", font=font)
    draw.text((x_first + (_CELL + 6), header_y), "trained", fill="black", font=font)
    if report.methods:
        for j, step in enumerate(report.methods[0].randomization):
            draw.text((x_first + (2 + j) * (_CELL + 6), header_y), f"+{step.layer}"[:12], fill="black", font=font)
    for i, m in enumerate(report.methods):
        y = header_y + 16 + i * row_height
        verdict = "PASS" if m.passed else "FAIL"
        draw.text((_PAD, y + _CELL // 2 - 12), m.method[:20], fill=colours[m.method], font=font)
        draw.text((_PAD, y + _CELL // 2 + 2), verdict, fill=(0, 128, 0) if m.passed else (200, 0, 0), font=font)
        if report.example_image is not None:
            image.paste(_to_image(report.example_image, _CELL), (x_first, y))
        image.paste(_heat(m.example_map, _CELL), (x_first + (_CELL + 6), y))
        for j, step in enumerate(m.randomization):
            x = x_first + (2 + j) * (_CELL + 6)
            image.paste(_heat(step.example, _CELL), (x, y))
            draw.text((x, y + _CELL + 2), f"rho={step.spearman:.2f}", fill="black", font=font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
