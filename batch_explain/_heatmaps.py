"""Heatmap PNGs for batch results, drawn by the client's renderer with the client's options."""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass

import numpy as np

from serving_client import contract, render

__all__ = ["HeatmapOptions", "draw", "heatmap_name", "selected"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class HeatmapOptions:
    """How overlays are drawn: the options of ``saliency-client --overlay``.

    Attributes:
        fraction: share of the images that get a PNG, chosen by a hash of their id (so a rerun
            draws the same ones); 0 draws none, 1 all.
        colormap, alpha, clip_percentiles, polarity, overlay_type: see
            :func:`serving_client.render.overlay`.
    """

    fraction: float = 1.0
    colormap: str | None = None
    alpha: float = 0.5
    clip_percentiles: tuple[float, float] | None = None
    polarity: str = "positive"
    overlay_type: str = "original"

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"heatmap fraction must be in [0, 1]; got {self.fraction!r}.")
        if self.polarity not in render.POLARITIES:
            raise ValueError(
                f"Unknown polarity {self.polarity!r}; expected one of {', '.join(render.POLARITIES)}."
            )
        if self.overlay_type not in render.OVERLAY_TYPES:
            raise ValueError(
                f"Unknown overlay_type {self.overlay_type!r}; expected one of "
                f"{', '.join(render.OVERLAY_TYPES)}."
            )


def _digest(record_id: str) -> str:
    return hashlib.sha256(record_id.encode("utf-8")).hexdigest()


def selected(record_id: str, fraction: float) -> bool:
    """Whether ``record_id`` is in the deterministic ``fraction`` that gets a heatmap."""
    if fraction >= 1.0:
        return True
    return int(_digest(record_id)[:8], 16) < fraction * 0x1_0000_0000


def heatmap_name(record_id: str) -> str:
    """``heatmaps/<readable stem>-<8 hex of the id's hash>.png``: unique and stable per id."""
    stem = _UNSAFE.sub("_", record_id.rsplit("/", 1)[-1].rsplit(".", 1)[0])[-48:] or "image"
    return f"heatmaps/{stem}-{_digest(record_id)[:8]}.png"


def draw(pixels: np.ndarray | bytes, outputs: dict[str, np.ndarray], options: HeatmapOptions) -> bytes:
    """The overlay of one result as PNG bytes.

    Raises:
        ValueError: a polarity other than ``positive`` on a signature without signed
            ``attributions``, or what :func:`serving_client.render.overlay` refuses.
    """
    from PIL import Image

    saliency = np.asarray(outputs[contract.SALIENCY], dtype=np.float32)
    if isinstance(pixels, bytes):
        with Image.open(io.BytesIO(pixels)) as picture:
            image = np.asarray(
                picture.convert("RGB").resize(
                    (saliency.shape[1], saliency.shape[0]), Image.Resampling.BILINEAR
                )
            )
    else:
        image = pixels
    if options.polarity == "positive":
        values = saliency
    elif contract.ATTRIBUTIONS in outputs:
        values = render.signed_map(outputs[contract.ATTRIBUTIONS])
    else:
        raise ValueError(
            f"--polarity {options.polarity} needs signed attributions; this signature returns "
            "only a [0, 1] saliency map (use an integrated-gradients signature)."
        )
    drawn = render.overlay(
        image,
        values,
        colormap=options.colormap,
        alpha=options.alpha,
        clip_percentiles=options.clip_percentiles,
        polarity=options.polarity,
        overlay_type=options.overlay_type,
    )
    buffer = io.BytesIO()
    Image.fromarray(drawn).save(buffer, format="PNG")
    return buffer.getvalue()
