"""Small built-in colormaps, interpolated to 256-entry uint8 lookup tables (no matplotlib)."""

from __future__ import annotations

import functools

import numpy as np

# Anchors sampled from matplotlib's perceptually uniform maps at 0, 1/8, ..., 1.
_UNIFORM_STOPS = np.linspace(0.0, 1.0, 9)
_INFERNO = (
    (0.001462, 0.000466, 0.013866),
    (0.087411, 0.044556, 0.224813),
    (0.258234, 0.038571, 0.406485),
    (0.416331, 0.090203, 0.432943),
    (0.578304, 0.148039, 0.404411),
    (0.735683, 0.215906, 0.330245),
    (0.865006, 0.316822, 0.226055),
    (0.954506, 0.468744, 0.099874),
    (0.988362, 0.998364, 0.644924),
)
_VIRIDIS = (
    (0.267004, 0.004874, 0.329415),
    (0.282623, 0.140926, 0.457517),
    (0.229739, 0.322361, 0.545706),
    (0.172719, 0.448791, 0.557885),
    (0.127568, 0.566949, 0.550556),
    (0.157851, 0.683765, 0.501686),
    (0.369214, 0.788888, 0.382914),
    (0.678489, 0.863742, 0.189503),
    (0.993248, 0.906157, 0.143936),
)
# Jet's classic piecewise-linear segments, one (positions, values) pair per channel.
_JET = (
    ((0.0, 0.35, 0.66, 0.89, 1.0), (0.0, 0.0, 1.0, 1.0, 0.5)),
    ((0.0, 0.125, 0.375, 0.64, 0.91, 1.0), (0.0, 0.0, 1.0, 1.0, 0.0, 0.0)),
    ((0.0, 0.11, 0.34, 0.65, 1.0), (0.5, 1.0, 1.0, 0.0, 0.0)),
)
_GRAY = (((0.0, 1.0), (0.0, 1.0)),) * 3
# Diverging, for signed maps (polarity "both"): ColorBrewer PiYG-11 (8e0152 … f7f7f7 … 276419),
# pink for negative (0), light gray for zero (0.5), green for positive (1), as Vertex AI's
# "pink_green".
_PINK_GREEN_HEX = (
    "8e0152", "c51b7d", "de77ae", "f1b6da", "fde0ef", "f7f7f7",
    "e6f5d0", "b8e186", "7fbc41", "4d9221", "276419",
)  # fmt: skip
# Vertex AI's other names. RED and GREEN color the magnitude whatever its sign ("Positive:
# red. Negative: red."): black to the full color. RED_GREEN is diverging, red for negative,
# green for positive, through a dark gray zero (so weak attributions stay dim on an overlay).
_RED = ((0.0, 1.0), (0.0, 1.0)), ((0.0, 1.0), (0.0, 0.0)), ((0.0, 1.0), (0.0, 0.0))
_GREEN = ((0.0, 1.0), (0.0, 0.0)), ((0.0, 1.0), (0.0, 1.0)), ((0.0, 1.0), (0.0, 0.0))
_RED_GREEN_HEX = ("ff0000", "202020", "00ff00")


def _uniform(colors: tuple[tuple[float, float, float], ...]) -> tuple:
    table = np.asarray(colors)
    return tuple((tuple(_UNIFORM_STOPS), tuple(table[:, channel])) for channel in range(3))


def _from_hex(codes: tuple[str, ...]) -> tuple:
    stops = tuple(np.linspace(0.0, 1.0, len(codes)))
    rgb = np.asarray([[int(code[i : i + 2], 16) / 255 for i in (0, 2, 4)] for code in codes])
    return tuple((stops, tuple(rgb[:, channel])) for channel in range(3))


_ANCHORS = {
    "inferno": _uniform(_INFERNO),
    "viridis": _uniform(_VIRIDIS),
    "jet": _JET,
    "gray": _GRAY,
    "pink_green": _from_hex(_PINK_GREEN_HEX),
    "red": _RED,
    "green": _GREEN,
    "red_green": _from_hex(_RED_GREEN_HEX),
}
# Vertex AI's PINK_WHITE_GREEN is the PiYG palette, which is what pink_green already draws:
# one table, two names (Vertex's PINK_GREEN and PINK_WHITE_GREEN look the same here).
_ALIASES = {"pink_white_green": "pink_green"}

#: Colormaps whose middle is the neutral color, meant for signed maps: a positive map uses
#: their upper half (zero → neutral, positive → green), a negative map the lower half.
DIVERGING = ("pink_green", "pink_white_green", "red_green")
#: Colormaps of the magnitude: with polarity "both" both signs get the same color.
MAGNITUDE = ("red", "green")

COLORMAPS = tuple(sorted((*_ANCHORS, *_ALIASES)))


@functools.cache
def lookup_table(name: str) -> np.ndarray:
    """Return the ``[256, 3]`` uint8 table of colormap ``name``.

    Raises:
        ValueError: for an unknown name.
    """
    if name not in COLORMAPS:
        raise ValueError(f"Unknown colormap {name!r}; expected one of {', '.join(COLORMAPS)}.")
    positions = np.linspace(0.0, 1.0, 256)
    channels = [np.interp(positions, xs, ys) for xs, ys in _ANCHORS[_ALIASES.get(name, name)]]
    table = np.round(np.stack(channels, axis=-1) * 255).astype(np.uint8)
    table.setflags(write=False)
    return table
