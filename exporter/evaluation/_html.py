"""Self-contained HTML reports: the evaluation (``report.html`` beside ``evaluation.json``) and
the export report (``saliency-export --report-html``).

One file each, readable offline: curves are inline SVG, maps inline PNG data URLs drawn with
:func:`serving_client.render.heatmap`, the style a ``<style>`` element; nothing is fetched.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # the report renders itself through this module; types only, no import cycle
    from exporter.evaluation._report import EvaluationReport, MethodEvaluation, PerturbationScores

__all__ = ["evaluation_html", "export_report_html", "write_html"]

_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf")
_RANDOM = "#808080"
_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 0 auto; padding: 1rem;
  color: #1d1d1f; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.15rem; margin-top: 2rem; } h3 { font-size: 1rem; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: left; vertical-align: top; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
.pass { color: #17702a; font-weight: 600; } .fail { color: #b00020; font-weight: 600; }
.maps { display: flex; flex-wrap: wrap; gap: 0.5rem; }
figure { margin: 0; font-size: 0.8rem; text-align: center; }
figure img { width: 96px; height: 96px; image-rendering: pixelated; border: 1px solid #ccc; }
figcaption { max-width: 110px; word-break: break-all; }
svg { background: #fff; border: 1px solid #ddd; margin-right: 0.5rem; }
code { background: #f2f2f2; padding: 0 0.2rem; }
"""


def write_html(document: str, path: str | Path) -> Path:
    """Write an HTML document (parent directories created) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document, encoding="utf-8")
    return path


def evaluation_html(report: EvaluationReport) -> str:
    """The evaluation as one HTML page.

    Sections: the per-method summary (verdict, failures, randomization, AUCs and gains over
    random order), deletion and insertion curves of each method beside the random order with
    their AUCs, and per method the randomization cascade: the original map, the map after
    each step, and the Spearman/SSIM curve over the steps.

    Args:
        report: what :func:`exporter.evaluation.evaluate_export` returned.

    Returns:
        The HTML text.
    """
    verdict = _verdict(report.passed)
    parts = [
        f"<h1>Evaluation of <code>{_e(report.export_dir)}</code>: {verdict}</h1>",
        f"<p>{report.num_images} images. Settings: {_e(_inline(report.settings))}.</p>",
        "<h2>Summary</h2>",
        _summary_table(report),
    ]
    if report.skipped:
        rows = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in report.skipped.items())
        parts.append(f"<h3>Not evaluated</h3><table><tr><th>signature</th><th>why</th></tr>{rows}</table>")
    parts.append("<h2>Deletion and insertion</h2>")
    parts.append(
        "<p>Mean probability of the target class as the most salient pixels are deleted "
        "(lower area is better) or inserted into a blurred image (higher is better), beside "
        "the same curves in a random pixel order.</p>"
    )
    parts.append(_curves_svg(report, "deletion"))
    parts.append(_curves_svg(report, "insertion"))
    parts.append("<h2>Randomization cascade</h2>")
    parts.append(
        "<p>Layers are re-initialized from the top; a faithful method's maps stop resembling "
        "the original (Spearman correlation of |maps| and SSIM fall).</p>"
    )
    for index, method in enumerate(report.methods):
        parts.append(_cascade_section(report, method, _PALETTE[index % len(_PALETTE)]))
    return _page(f"Evaluation: {report.export_dir}", "\n".join(parts))


def export_report_html(report: Mapping[str, Any]) -> str:
    """The export report (``assets.extra/export_report.json``) as one HTML page.

    Every field is shown, section by section; a measured ``*_max_abs_diff`` beside its
    ``*_tolerance`` is marked within or beyond it.

    Args:
        report: the report's JSON object.

    Returns:
        The HTML text.
    """
    export = report.get("export") or {}
    model = report.get("model") or {}
    title = f"Export report: {model.get('name', '?')} version {export.get('version', '?')}"
    parts = [f"<h1>{_e(title)}</h1>", f"<p>Written {_e(str(report.get('created_at', '')))}.</p>"]
    for key, value in report.items():
        if key == "created_at":
            continue
        parts.append(f"<h2>{_e(key)}</h2>")
        parts.append(_value_html(value))
    return _page(title, "\n".join(parts))


# -- evaluation pieces ---------------------------------------------------------------------------


def _summary_table(report: EvaluationReport) -> str:
    head = (
        "<tr><th>method</th><th>source</th><th>verdict</th><th>randomized Spearman</th>"
        "<th>randomized SSIM</th><th>deletion AUC</th><th>insertion AUC</th>"
        "<th>deletion gain over random</th><th>insertion gain over random</th><th>failures</th></tr>"
    )
    rows = []
    for m in report.methods:
        last = m.randomization[-1] if m.randomization else None
        failures = "<br>".join(_e(f) for f in m.failures) or "—"
        rows.append(
            f"<tr data-method='{_e(m.method)}'><td>{_e(m.method)}</td><td>{_e(m.source)}</td>"
            f"<td>{_verdict(m.passed)}</td>{_num(m.randomized_spearman)}"
            f"{_num(last.ssim if last else float('nan'))}{_num(m.scores.deletion_auc)}"
            f"{_num(m.scores.insertion_auc)}{_num(m.deletion_gain_over_random, sign=True)}"
            f"{_num(m.insertion_gain_over_random, sign=True)}<td>{failures}</td></tr>"
        )
    rows.append(
        "<tr data-method='(random order)'><td>(random order)</td><td></td><td></td><td></td><td></td>"
        f"{_num(report.random.deletion_auc)}{_num(report.random.insertion_auc)}<td></td><td></td><td></td></tr>"
    )
    return f"<table class='summary'>{head}{''.join(rows)}</table>"


def _curves_svg(report: EvaluationReport, kind: str) -> str:
    curves: list[tuple[str, Sequence[float], float, str]] = []  # name, curve, AUC, colour
    for index, m in enumerate(report.methods):
        curves.append((m.method, *_curve_of(m.scores, kind), _PALETTE[index % len(_PALETTE)]))
    curves.append(("random order", *_curve_of(report.random, kind), _RANDOM))
    series = [(f"{name} (AUC {auc:.3f})", values, colour) for name, values, auc, colour in curves]
    return _line_chart(f"{kind}", "fraction of pixels", series, y_range=(0.0, 1.0), css_class=kind)


def _curve_of(scores: PerturbationScores, kind: str) -> tuple[Sequence[float], float]:
    if kind == "deletion":
        return scores.deletion_curve, scores.deletion_auc
    return scores.insertion_curve, scores.insertion_auc


def _cascade_section(report: EvaluationReport, method: MethodEvaluation, colour: str) -> str:
    figures = [_figure(method.example_map, "original")]
    if report.example_image is not None:
        figures.insert(0, _figure(report.example_image, "image", heat=False))
    figures += [_figure(step.example, f"after {step.layer}") for step in method.randomization]
    chart = ""
    if method.randomization:
        chart = _line_chart(
            f"{method.method}: similarity to the original maps",
            "layers re-initialized (top first)",
            [
                ("Spearman |maps|", [s.spearman for s in method.randomization], colour),
                ("SSIM", [s.ssim for s in method.randomization], _RANDOM),
            ],
            y_range=(-1.0, 1.0),
            css_class="cascade",
            x_labels=[s.layer for s in method.randomization],
        )
    return (
        f"<section class='method' data-method='{_e(method.method)}'><h3>{_e(method.method)} "
        f"{_verdict(method.passed)}</h3><div class='maps'>{''.join(figures)}</div>{chart}</section>"
    )


def _figure(array: np.ndarray, caption: str, *, heat: bool = True) -> str:
    return (
        f"<figure><img alt='{_e(caption)}' src='{_png_data_url(array, heat=heat)}'>"
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _png_data_url(array: np.ndarray, *, heat: bool) -> str:
    from PIL import Image

    from serving_client import render

    values = np.nan_to_num(np.asarray(array, dtype=np.float64))
    if values.ndim == 3 and values.shape[-1] == 1:
        values = values[..., 0]
    low, high = float(values.min(initial=0.0)), float(values.max(initial=0.0))
    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    if heat and scaled.ndim == 2:
        pixels = render.heatmap(scaled, colormap="inferno")
    else:
        pixels = np.rint(scaled * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _line_chart(
    title: str,
    x_title: str,
    series: Sequence[tuple[str, Sequence[float], str]],
    *,
    y_range: tuple[float, float],
    css_class: str,
    x_labels: Sequence[str] | None = None,
) -> str:
    """An SVG chart: x from 0 to 1 over each series' points, y over ``y_range``."""
    # Layer names are long: rotated under the axis, they need room below the plot.
    bottom = 90 if x_labels else 40
    width, height, left, right, top = 520, 260 + bottom, 44, 40, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    low, high = y_range

    def x_of(k: int, n: int) -> float:
        return left + (k / n if n else 0.0) * plot_w

    def y_of(value: float) -> float:
        value = min(max(value, low), high) if math.isfinite(value) else low
        return top + (high - value) / (high - low) * plot_h

    items = [
        f"<svg class='chart {css_class}' width='{width}' "
        f"height='{height}' viewBox='0 0 {width} {height}' role='img' aria-label='{_e(title)}'>",
        f"<text x='{left}' y='16' font-size='13'>{_e(title)}</text>",
        f"<rect x='{left}' y='{top}' width='{plot_w}' height='{plot_h}' fill='none' stroke='#000'/>",
    ]
    for tick in np.linspace(low, high, 5):
        y = y_of(float(tick))
        items.append(f"<text x='4' y='{y + 4:.1f}' font-size='10'>{tick:.2f}</text>")
        items.append(f"<line x1='{left - 3}' y1='{y:.1f}' x2='{left}' y2='{y:.1f}' stroke='#000'/>")
    longest = max((len(values) for _, values, _ in series), default=1)
    if x_labels:
        for k, label in enumerate(x_labels):
            x = x_of(k, longest - 1)
            items.append(
                f"<text font-size='9' transform='translate({x:.1f},{top + plot_h + 10}) rotate(60)'>"
                f"{_e(label)}</text>"
            )
    else:
        for tick in (0.0, 0.5, 1.0):
            x = left + tick * plot_w
            items.append(f"<text x='{x - 8:.1f}' y='{top + plot_h + 14}' font-size='10'>{tick:.0%}</text>")
        items.append(
            f"<text x='{left + plot_w / 2 - 50:.1f}' y='{height - 6}' font-size='11'>{_e(x_title)}</text>"
        )
    for index, (name, values, colour) in enumerate(series):
        n = len(values) - 1
        points = " ".join(f"{x_of(k, n):.2f},{y_of(float(v)):.2f}" for k, v in enumerate(values))
        items.append(
            f"<polyline data-series='{_e(name)}' points='{points}' fill='none' stroke='{colour}' "
            "stroke-width='2'/>"
        )
        legend_y = top + 14 + 14 * index
        items.append(
            f"<line x1='{left + plot_w - 190}' y1='{legend_y - 4}' x2='{left + plot_w - 174}' "
            f"y2='{legend_y - 4}' stroke='{colour}' stroke-width='2'/>"
        )
        items.append(
            f"<text x='{left + plot_w - 170}' y='{legend_y}' font-size='11'>{_e(name)}</text>"
        )
    items.append("</svg>")
    return "".join(items)


# -- export report pieces ------------------------------------------------------------------------


def _value_html(value: Any) -> str:
    if isinstance(value, Mapping):
        if not value:
            return "<p>—</p>"
        rows = []
        for key, item in value.items():
            mark = _tolerance_mark(key, item, value)
            rows.append(f"<tr><th>{_e(str(key))}</th><td>{_value_html(item) if _nested(item) else _scalar(item)}{mark}</td></tr>")
        return f"<table>{''.join(rows)}</table>"
    if isinstance(value, list) and any(_nested(item) for item in value):
        return "<ol>" + "".join(f"<li>{_value_html(item)}</li>" for item in value) + "</ol>"
    return _scalar(value)


def _nested(value: Any) -> bool:
    return isinstance(value, Mapping) or (isinstance(value, list) and any(_nested(v) for v in value))


def _scalar(value: Any) -> str:
    if isinstance(value, list):
        return "<code>" + _e(json.dumps(value)) + "</code>"
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"<span class='number'>{value:.6g}</span>"
    return _e(str(value))


def _tolerance_mark(key: Any, value: Any, table: Mapping[str, Any]) -> str:
    if not (isinstance(key, str) and key.endswith("_max_abs_diff")):
        return ""
    tolerance = table.get(key.removesuffix("_max_abs_diff") + "_tolerance")
    if not isinstance(value, int | float) or not isinstance(tolerance, int | float):
        return ""
    if value <= tolerance:
        return f" <span class='pass'>within {tolerance:.3g}</span>"
    return f" <span class='fail'>beyond {tolerance:.3g}</span>"


# -- shared --------------------------------------------------------------------------------------


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{_e(title)}</title>"
        f"<style>{_STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )


def _verdict(passed: bool) -> str:
    return "<span class='pass'>PASS</span>" if passed else "<span class='fail'>FAIL</span>"


def _num(value: float, *, sign: bool = False) -> str:
    text = "—" if not math.isfinite(value) else (f"{value:+.3f}" if sign else f"{value:.3f}")
    return f"<td class='number'>{text}</td>"


def _inline(settings: Mapping[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in settings.items())


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)
