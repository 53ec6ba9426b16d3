"""Vertex Explainable AI's image ``visualization`` block, read into this client's rendering options.

Vertex's ``ExplanationMetadata.InputMetadata.Visualization`` (REST camelCase or the snake_case
of its Python SDK and docs; enum values in any case) maps one to one onto
:func:`serving_client.render.overlay`'s options, which already use Vertex's vocabulary:

============================ ==============================================================
Vertex field                 here
============================ ==============================================================
``type`` PIXELS / OUTLINES   ``visualization_type`` ``"pixels"`` / ``"outlines"``
``polarity``                 ``polarity`` (``positive``, ``negative``, ``both``)
``colorMap``                 ``colormap`` (``pink_green``, ``pink_white_green``, ``viridis``,
                             ``red``, ``green``, ``red_green``)
``clipPercentUpperbound``    ``clip_percentiles[1]``
``clipPercentLowerbound``    ``clip_percentiles[0]``
``overlayType``              ``overlay_type`` (``none``, ``original``, ``grayscale``,
                             ``mask_black``)
============================ ==============================================================

A field the block leaves out takes Vertex's documented default for the method (the API
reference of ``Visualization``): OUTLINES and PINK_GREEN for Integrated Gradients, PIXELS and
VIRIDIS for XRAI, POSITIVE, upper bound 99.9, lower bound 62, overlay NONE. TensorFlow-free.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from . import render

__all__ = ["FIELDS", "Visualization", "snake_case"]

#: The block's fields, snake_case.
FIELDS = (
    "type",
    "polarity",
    "color_map",
    "clip_percent_upperbound",
    "clip_percent_lowerbound",
    "overlay_type",
)
_ENUMS: dict[str, tuple[str, ...]] = {
    "type": render.VISUALIZATION_TYPES,
    "polarity": render.POLARITIES,
    "color_map": ("pink_green", "pink_white_green", "viridis", "red", "green", "red_green"),
    "overlay_type": ("none", "original", "grayscale", "mask_black"),
}
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def snake_case(key: str) -> str:
    """``clipPercentUpperbound`` → ``clip_percent_upperbound`` (snake_case stays as it is)."""
    return _CAMEL.sub("_", key).lower()


@dataclasses.dataclass(frozen=True)
class Visualization:
    """A Vertex ``visualization`` block with every field resolved (given or defaulted).

    Attributes:
        type: ``"pixels"`` or ``"outlines"``.
        polarity: ``"positive"``, ``"negative"`` or ``"both"``.
        color_map: a Vertex color map name, lower case (all are in ``render.COLORMAPS``).
        clip_percent_upperbound: the percentile above which values saturate, in (0, 100].
        clip_percent_lowerbound: the percentile below which values are hidden, in [0, 100).
        overlay_type: ``"none"``, ``"original"``, ``"grayscale"`` or ``"mask_black"``.
        defaulted: the fields the block left out (they hold Vertex's defaults).
    """

    type: str
    polarity: str
    color_map: str
    clip_percent_upperbound: float
    clip_percent_lowerbound: float
    overlay_type: str
    defaulted: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name, allowed in _ENUMS.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"visualization.{name} must be one of {', '.join(allowed)}; got "
                    f"{getattr(self, name)!r}."
                )
        low, high = self.clip_percent_lowerbound, self.clip_percent_upperbound
        if not 0.0 <= low < high <= 100.0:
            raise ValueError(
                "visualization.clip_percent_lowerbound and clip_percent_upperbound must satisfy "
                f"0 <= lowerbound < upperbound <= 100; got {low:g} and {high:g}."
            )

    @classmethod
    def from_vertex(
        cls, block: Mapping[str, Any], *, method: str = "integrated_gradients", where: str = "visualization"
    ) -> Visualization:
        """Read a Vertex ``visualization`` block.

        Args:
            block: the block as JSON values; keys camelCase or snake_case, enum values in any
                case (``"OUTLINES"``, ``"Outlines"``); ``*_UNSPECIFIED`` means the default.
            method: ``"xrai"`` takes XRAI's defaults (PIXELS, VIRIDIS), anything else IG's.
            where: the block's JSON path, for messages.

        Returns:
            The resolved visualization.

        Raises:
            ValueError: naming the field and its path for an unknown field, a value of the
                wrong type or outside the field's choices.
        """
        if not isinstance(block, Mapping):
            raise ValueError(f"{where} must be a JSON object; got {block!r}.")
        xrai = method == "xrai"
        values: dict[str, Any] = {
            "type": "pixels" if xrai else "outlines",
            "polarity": "positive",
            "color_map": "viridis" if xrai else "pink_green",
            "clip_percent_upperbound": 99.9,
            "clip_percent_lowerbound": 62.0,
            "overlay_type": "none",
        }
        given: set[str] = set()
        for key, value in block.items():
            name = snake_case(str(key))
            if name not in FIELDS:
                raise ValueError(
                    f"{where}.{key} is not a Vertex visualization field saliency-serving knows; "
                    f"the fields are {', '.join(FIELDS)} (camelCase or snake_case)."
                )
            if name in _ENUMS:
                if not isinstance(value, str):
                    raise ValueError(f"{where}.{key} must be a string; got {value!r}.")
                text = value.lower()
                if text.endswith("_unspecified"):
                    continue
                if text not in _ENUMS[name]:
                    raise ValueError(
                        f"{where}.{key} is {value!r}; saliency-serving draws "
                        f"{', '.join(v.upper() for v in _ENUMS[name])}."
                    )
                values[name] = text
            else:
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ValueError(f"{where}.{key} must be a number (a percentile); got {value!r}.")
                values[name] = float(value)
            given.add(name)
        defaulted = tuple(name for name in FIELDS if name not in given)
        return cls(**values, defaulted=defaulted)

    def render_options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`serving_client.render.overlay` this block means."""
        return {
            "visualization_type": self.type,
            "polarity": self.polarity,
            "colormap": self.color_map,
            "clip_percentiles": (self.clip_percent_lowerbound, self.clip_percent_upperbound),
            "overlay_type": self.overlay_type,
        }

    def client_flags(self) -> list[str]:
        """The ``saliency-client explain``/``compare`` flags that draw the same way."""
        return [
            "--visualization-type", self.type,
            "--polarity", self.polarity,
            "--color-map", self.color_map,
            "--clip-percent-lowerbound", f"{self.clip_percent_lowerbound:g}",
            "--clip-percent-upperbound", f"{self.clip_percent_upperbound:g}",
            "--overlay-type", self.overlay_type,
        ]  # fmt: skip

    def to_mapping(self) -> dict[str, Any]:
        """The block as the export report records it (snake_case, lower-case values)."""
        out: dict[str, Any] = {name: getattr(self, name) for name in FIELDS}
        out["defaulted"] = list(self.defaulted)
        return out
