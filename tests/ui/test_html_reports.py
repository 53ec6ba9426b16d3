"""The HTML reports: built from known numbers, the page says them and draws them; opened in
Chromium, every map decodes and nothing is fetched (the file is self-contained)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from exporter.evaluation._html import evaluation_html, export_report_html, write_html
from exporter.evaluation._randomization import CascadeStep
from exporter.evaluation._report import EvaluationReport, MethodEvaluation, PerturbationScores
from tests.ui.conftest import screenshot

DELETION = (1.0, 0.6, 0.3, 0.1, 0.05)
RANDOM_DELETION = (1.0, 0.9, 0.75, 0.5, 0.2)


def scores(deletion, insertion) -> PerturbationScores:
    auc = lambda values: float(np.trapezoid(values, dx=1 / (len(values) - 1)))  # noqa: E731
    return PerturbationScores(auc(deletion), auc(insertion), tuple(deletion), tuple(insertion))


def method(name: str, failures=()) -> MethodEvaluation:
    rng = np.random.default_rng(len(name))
    steps = tuple(
        CascadeStep(layer, spearman, ssim, rng.random((8, 8)))
        for layer, spearman, ssim in (("dense", 0.7, 0.5), ("conv2d_1", 0.3, 0.2), ("conv2d", 0.05, 0.01))
    )
    return MethodEvaluation(
        method=name, source=f"explain_{name}", randomization=steps,
        scores=scores(DELETION, (0.1, 0.5, 0.8, 0.9, 1.0)),
        deletion_gain_over_random=0.2, insertion_gain_over_random=0.1,
        failures=tuple(failures), example_map=rng.random((8, 8)),
    )  # fmt: skip


@pytest.fixture
def report() -> EvaluationReport:
    return EvaluationReport(
        export_dir="models/digits/1",
        num_images=4,
        settings={"steps": 4, "seed": 0},
        methods=(method("vanilla"), method("smoothgrad", ["randomized Spearman 0.9 > 0.5"])),
        random=scores(RANDOM_DELETION, (0.1, 0.2, 0.4, 0.6, 1.0)),
        skipped={"explain_gradcam": "not asked for"},
        example_image=np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8, 1),
    )


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.references: list[str] = []
        self.images: list[str] = []
        self.polylines: dict[str, list[str]] = {}
        self.svg: str | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "svg":
            self.svg = attributes.get("class")
        if tag == "img":
            self.images.append(attributes["src"])
        elif tag == "polyline":
            self.polylines.setdefault(self.svg, []).append(attributes)
        self.references += [v for k, v in attrs if k in ("src", "href") and not v.startswith("data:")]


def test_evaluation_page_states_and_draws_the_numbers(report, tmp_path):
    text = evaluation_html(report)
    page = Page()
    page.feed(text)
    assert page.references == []  # self-contained
    assert "http:" not in text and "https:" not in text
    # Per method: the image, its original map and one map per cascade step.
    assert len(page.images) == 2 * (2 + 3)
    vanilla = re.search(r"<tr data-method='vanilla'>(.*?)</tr>", text).group(1)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", vanilla)
    assert cells[:3] == ["vanilla", "explain_vanilla", "<span class='pass'>PASS</span>"]
    m = report.method("vanilla")
    assert cells[3:9] == [
        "0.050", "0.010", f"{m.scores.deletion_auc:.3f}", f"{m.scores.insertion_auc:.3f}", "+0.200", "+0.100",
    ]
    assert "randomized Spearman 0.9 &gt; 0.5" in text and "not asked for" in text
    # The deletion chart's polylines, read back through the chart's axes, are the curves.
    deletion = {line["data-series"]: line["points"] for line in page.polylines["chart deletion"]}
    assert set(deletion) == {
        f"vanilla (AUC {m.scores.deletion_auc:.3f})",
        f"smoothgrad (AUC {m.scores.deletion_auc:.3f})",
        f"random order (AUC {report.random.deletion_auc:.3f})",
    }
    for name, curve in ((f"vanilla (AUC {m.scores.deletion_auc:.3f})", DELETION),
                        (f"random order (AUC {report.random.deletion_auc:.3f})", RANDOM_DELETION)):
        ys = np.asarray([float(point.split(",")[1]) for point in deletion[name].split()])
        top, bottom = 28, 300 - 40  # the plot box of a curve chart
        np.testing.assert_allclose((bottom - ys) / (bottom - top), curve, atol=1e-3)
    cascade = page.polylines["chart cascade"]
    ys = np.asarray([float(p.split(",")[1]) for p in cascade[0]["points"].split()])
    assert list(np.argsort(ys)) == [0, 1, 2]  # Spearman falls step by step: y grows downwards
    write_html(text, tmp_path / "report.html")


def test_export_report_page_marks_tolerances(tmp_path):
    report = {
        "created_at": "2026-01-01T00:00:00+00:00",
        "export": {"version": 3, "class_names": ["a", "b"]},
        "model": {"name": "digits", "input_shape": [28, 28, 1]},
        "verification": {
            "logits_max_abs_diff": 1e-6, "logits_tolerance": 1e-4,
            "saliency_other_class_max_abs_diff": 0.5, "saliency_other_class_tolerance": 0.01,
        },  # fmt: skip
        "signatures": {"explain": {"inputs": {"images": {"dtype": "float32"}}}},
    }
    text = export_report_html(report)
    assert "<h1>Export report: digits version 3</h1>" in text
    assert "logits_max_abs_diff</th><td><span class='number'>1e-06</span> <span class='pass'>within 0.0001</span>" in text
    assert "<span class='fail'>beyond 0.01</span>" in text
    assert "<code>[&quot;a&quot;, &quot;b&quot;]</code>" in text
    assert json.dumps(report)  # every field came from the report, none invented
    page = Page()
    page.feed(text)
    assert page.references == []


@pytest.mark.integration
def test_reports_open_in_chromium_with_every_map_decoded(report, tmp_path, page):
    path = write_html(evaluation_html(report), tmp_path / "report.html")
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.goto(Path(path).as_uri())
    sizes = page.eval_on_selector_all(
        "img", "images => images.map(i => [i.complete, i.naturalWidth, i.naturalHeight])"
    )
    assert sizes == [[True, 8, 8]] * 10
    assert failed == []
    screenshot(page, "evaluation-report")


@pytest.mark.integration
def test_the_clis_write_the_html_reports(tmp_path, capsys):
    """saliency-export --report-html, then saliency-evaluate's report.html beside its JSON."""
    import keras

    from exporter.cli import main as export_main
    from exporter.evaluation.cli import main as evaluate_main
    from serving_client.contract import REPORT_ASSET

    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 1))
    x = keras.layers.Flatten()(keras.layers.Conv2D(2, 3, activation="relu")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    model.save(tmp_path / "tiny.keras")
    out = tmp_path / "report.html"
    code = export_main(["--model", str(tmp_path / "tiny.keras"), "--output", str(tmp_path / "tiny"),
                        "--report-html", str(out), "--quiet"])  # fmt: skip
    assert code == 0
    report = json.loads((tmp_path / "tiny" / "1" / REPORT_ASSET).read_text())
    assert out.read_text() == export_report_html(report)
    assert "<h2>verification</h2>" in out.read_text()

    np.save(tmp_path / "data.npy", np.random.default_rng(0).random((4, 6, 6, 1), dtype=np.float32))
    capsys.readouterr()
    evaluate_main([str(tmp_path / "tiny" / "1"), "--data", str(tmp_path / "data.npy"),
                   "--model", str(tmp_path / "tiny.keras"), "--num-images", "4", "--steps", "4",
                   "--out", str(tmp_path / "evaluation"), "--quiet"])  # fmt: skip
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == str(tmp_path / "evaluation" / "report.html")
    evaluation = json.loads((tmp_path / "evaluation" / "evaluation.json").read_text())
    page = (tmp_path / "evaluation" / "report.html").read_text()
    for name, method in evaluation["methods"].items():
        row = re.search(rf"<tr data-method='{name}'>(.*?)</tr>", page).group(1)
        assert f"<td class='number'>{method['deletion_auc']:.3f}</td>" in row
        assert f"<td class='number'>{method['insertion_auc']:.3f}</td>" in row
