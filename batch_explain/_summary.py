"""The job's summary: counts, class histogram, mean scores and failures, as JSON and HTML."""

from __future__ import annotations

import html
import json
from typing import Any

import apache_beam as beam

__all__ = ["DeadLetterSummary", "RowSummary", "render_html"]

#: Heatmaps shown in the HTML overview (the smallest ids, so a rerun shows the same ones).
OVERVIEW_HEATMAPS = 24
#: Dead letters listed by id in the summary (all are in the dead-letter output).
LISTED_FAILURES = 20


class RowSummary(beam.CombineFn):
    """Combine output rows into counts, histograms and mean scores."""

    def create_accumulator(self) -> dict[str, Any]:
        return {
            "count": 0,
            "predicted": {},
            "probability_sum": 0.0,
            "target_probability_sum": 0.0,
            "labelled": 0,
            "correct": 0,
            "approximation_error_sum": 0.0,
            "approximation_error_count": 0,
            "deletion_auc_sum": 0.0,
            "insertion_auc_sum": 0.0,
            "faithfulness_count": 0,
            "heatmaps": [],
        }

    def add_input(self, acc: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
        acc["count"] += 1
        key = str(row["predicted_class"])
        acc["predicted"][key] = acc["predicted"].get(key, 0) + 1
        acc["probability_sum"] += row["probability"]
        acc["target_probability_sum"] += row["target_probability"]
        if row["label"] is not None:
            acc["labelled"] += 1
            acc["correct"] += int(row["label"] == row["predicted_class"])
        if row["approximation_error"] is not None:
            acc["approximation_error_sum"] += row["approximation_error"]
            acc["approximation_error_count"] += 1
        if row["deletion_auc"] is not None:
            acc["deletion_auc_sum"] += row["deletion_auc"]
            acc["insertion_auc_sum"] += row["insertion_auc"]
            acc["faithfulness_count"] += 1
        if row["heatmap"] is not None:
            acc["heatmaps"] = sorted([*acc["heatmaps"], (row["id"], row["heatmap"])])[:OVERVIEW_HEATMAPS]
        return acc

    def merge_accumulators(self, accumulators: Any) -> dict[str, Any]:
        merged = self.create_accumulator()
        for acc in accumulators:
            for name in ("count", "labelled", "correct", "approximation_error_count", "faithfulness_count"):
                merged[name] += acc[name]
            for name in ("probability_sum", "target_probability_sum", "approximation_error_sum",
                         "deletion_auc_sum", "insertion_auc_sum"):
                merged[name] += acc[name]
            for key, value in acc["predicted"].items():
                merged["predicted"][key] = merged["predicted"].get(key, 0) + value
            merged["heatmaps"] = sorted([*merged["heatmaps"], *acc["heatmaps"]])[:OVERVIEW_HEATMAPS]
        return merged

    def extract_output(self, acc: dict[str, Any]) -> dict[str, Any]:
        count = acc["count"]
        return {
            "explained": count,
            "predicted_class_histogram": dict(sorted(acc["predicted"].items(), key=lambda kv: int(kv[0]))),
            "mean_probability": acc["probability_sum"] / count if count else None,
            "mean_target_probability": acc["target_probability_sum"] / count if count else None,
            "labelled": acc["labelled"],
            "accuracy": acc["correct"] / acc["labelled"] if acc["labelled"] else None,
            "mean_approximation_error": (
                acc["approximation_error_sum"] / acc["approximation_error_count"]
                if acc["approximation_error_count"]
                else None
            ),
            "mean_deletion_auc": acc["deletion_auc_sum"] / acc["faithfulness_count"] if acc["faithfulness_count"] else None,
            "mean_insertion_auc": acc["insertion_auc_sum"] / acc["faithfulness_count"] if acc["faithfulness_count"] else None,
            "overview_heatmaps": [list(pair) for pair in acc["heatmaps"]],
        }


class DeadLetterSummary(beam.CombineFn):
    """Combine dead letters into counts per stage and reason, and the first ids."""

    def create_accumulator(self) -> dict[str, Any]:
        return {"count": 0, "by_stage": {}, "first": []}

    def add_input(self, acc: dict[str, Any], letter: dict[str, Any]) -> dict[str, Any]:
        acc["count"] += 1
        acc["by_stage"][letter["stage"]] = acc["by_stage"].get(letter["stage"], 0) + 1
        acc["first"] = sorted([*acc["first"], (letter["id"], letter["reason"])])[:LISTED_FAILURES]
        return acc

    def merge_accumulators(self, accumulators: Any) -> dict[str, Any]:
        merged = self.create_accumulator()
        for acc in accumulators:
            merged["count"] += acc["count"]
            for key, value in acc["by_stage"].items():
                merged["by_stage"][key] = merged["by_stage"].get(key, 0) + value
            merged["first"] = sorted([*merged["first"], *acc["first"]])[:LISTED_FAILURES]
        return merged

    def extract_output(self, acc: dict[str, Any]) -> dict[str, Any]:
        return {
            "failed": acc["count"],
            "failed_by_stage": dict(sorted(acc["by_stage"].items())),
            "failures": [{"id": i, "reason": r} for i, r in acc["first"]],
        }


def render_html(summary: dict[str, Any]) -> str:
    """A one-page overview: counts, the class histogram as bars, failures, a few heatmaps."""
    esc = html.escape
    histogram = summary["predicted_class_histogram"]
    peak = max(histogram.values(), default=1)
    bars = "".join(
        f"<tr><td>{esc(k)}</td><td><div style='background:#c0392b;height:12px;width:{300 * v // peak}px'>"
        f"</div></td><td>{v}</td></tr>"
        for k, v in histogram.items()
    )
    failures = "".join(
        f"<li><code>{esc(f['id'])}</code>: {esc(f['reason'])}</li>" for f in summary["failures"]
    )
    images = "".join(
        f"<figure style='display:inline-block;margin:4px'><img src='{esc(path)}' width='112' "
        f"style='image-rendering:pixelated'><figcaption>{esc(i.rsplit('/', 1)[-1])}</figcaption></figure>"
        for i, path in summary["overview_heatmaps"]
    )
    scores = {k: summary[k] for k in ("mean_probability", "mean_target_probability", "accuracy",
                                      "mean_approximation_error", "mean_deletion_auc", "mean_insertion_auc")}
    return (
        "<!doctype html><meta charset='utf-8'><title>Batch explanations</title>"
        "<body style='font-family:sans-serif'>"
        f"<h1>Batch explanations: {esc(summary['signature'])} of version {summary['model_version']}</h1>"
        f"<p>{summary['explained']} explained, {summary['failed']} failed "
        f"({esc(json.dumps(summary['failed_by_stage']))}).</p>"
        f"<pre>{esc(json.dumps(scores, indent=2))}</pre>"
        f"<h2>Predicted classes</h2><table>{bars}</table>"
        f"<h2>Failures (first {LISTED_FAILURES})</h2><ul>{failures}</ul>"
        f"<h2>Heatmaps</h2>{images}</body>\n"
    )
