"""Tables and the PASS/MISS summary, from the results dicts the benchmarks return."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Target", "evaluate_targets", "format_table", "render"]


@dataclass(frozen=True)
class Target:
    """One goal from the issues, checked against a measured figure."""

    name: str
    measured: float | None
    limit: float
    higher_is_better: bool
    unit: str

    @property
    def passed(self) -> bool | None:
        """True/False, or None when the figure was not measured (benchmark skipped)."""
        if self.measured is None:
            return None
        return self.measured >= self.limit if self.higher_is_better else self.measured <= self.limit

    def line(self) -> str:
        """``PASS  name: measured (target op limit)``."""
        verdict = {True: "PASS", False: "MISS", None: "SKIP"}[self.passed]
        op = ">=" if self.higher_is_better else "<="
        shown = "not measured" if self.measured is None else f"{self.measured:.2f}{self.unit}"
        return f"{verdict}  {self.name}: {shown} (target {op} {self.limit:g}{self.unit})"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields, verdict included."""
        return {**asdict(self), "passed": self.passed}


def _get(results: dict[str, Any], *keys: Any) -> float | None:
    node: Any = results
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return float(node)


def evaluate_targets(results: dict[str, Any]) -> list[Target]:
    """The targets of both issues, against whatever was measured."""
    ex, sv = "exporter", "serving"
    return [
        Target("explain/predict at batch 32", _get(results, ex, "batches", 32, "explain_over_predict"), 2.5, False, "x"),
        Target("explain/predict at batch 256", _get(results, ex, "batches", 256, "explain_over_predict"), 2.5, False, "x"),
        Target("eager/explain at batch 1", _get(results, ex, "batches", 1, "eager_over_explain"), 5.0, True, "x"),
        Target("gRPC adds at p50, batch 1", _get(results, sv, "batches", 1, "grpc_adds_ms"), 1.0, False, " ms"),  # issue 11 (was 1.5)
        *(
            Target(f"{method}: fastest competitor ({r['fastest']}) / ours at batch 32", r["speedup"], 2.0, True, "x")
            for method, r in results.get("competitors", {}).get("methods", {}).items()
        ),
    ]  # fmt: skip


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A right-aligned plain-text table (first column left-aligned)."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def fmt(row: Sequence[str]) -> str:
        cells = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(header), rule, *(fmt(r) for r in rows)])


def _exporter_table(exporter: dict[str, Any]) -> str:
    rows = []
    for batch, r in exporter["batches"].items():
        rows.append([
            str(batch), str(r["explain"]["n"]),
            f"{r['predict']['p50_ms']:.2f}", f"{r['explain']['p50_ms']:.2f}", f"{r['eager']['p50_ms']:.2f}",
            f"{r['explain_over_predict']:.2f}x", f"{r['eager_over_explain']:.2f}x",
        ])  # fmt: skip
    header = [
        "batch",
        "n",
        "predict ms",
        "explain ms",
        "eager ms",
        "explain/predict",
        "eager/explain",
    ]
    title = (
        "Exporter: per-call p50 through Tf1SavedModel (TF1 session) vs eager GradientTape "
        f"(eager differentiates the {exporter['eager_differentiates']})"
    )
    return f"{title}\n{format_table(header, rows)}"


def _serving_table(serving: dict[str, Any]) -> str:
    rows = []
    for batch, r in serving["batches"].items():
        rows.append([
            str(batch), str(r["grpc"]["n"]),
            f"{r['inproc']['p50_ms']:.2f}", f"{r['inproc']['p99_ms']:.2f}",
            f"{r['grpc']['p50_ms']:.2f}", f"{r['grpc']['p99_ms']:.2f}",
            f"{r['rest']['p50_ms']:.2f}", f"{r['rest']['p99_ms']:.2f}",
            f"{r['grpc_adds_ms']:+.2f}", f"{r['grpc_floor']['p50_ms']:.2f}",
            f"{r['echo_floor']['p50_ms']:.2f}" if "echo_floor" in r else "-", f"{r['rest_over_grpc']:.2f}x",
        ])  # fmt: skip
    header = [
        "batch", "n", "inproc p50", "inproc p99", "gRPC p50", "gRPC p99", "REST p50", "REST p99",
        "gRPC adds", "status RPC", "echo floor", "REST/gRPC",
    ]  # fmt: skip
    lines = [
        "Serving: explain round trip, ms (server subprocess on 127.0.0.1; inproc = Tf1SavedModel.run;\n"
        "gRPC adds = gRPC p50 - inproc p50; status RPC = GetModelStatus round trip p50;\n"
        "echo floor = Predict p50 against a model-free servicer answering the same response)",
        format_table(header, rows),
    ]
    lines += [
        f"gRPC adds {r['grpc_adds_ms']:.2f} ms at p50 (batch {b})"
        for b, r in serving["batches"].items()
    ]
    return "\n".join(lines)


def _methods_table(methods: dict[str, Any]) -> str:
    predict = methods["predict"]
    rows = [["serving_default", "serving_default", f"{predict['ms_per_image']:.3f}", "1.00x"]]
    for method, r in methods["methods"].items():
        rows.append([method, r["signature"], f"{r['ms_per_image']:.3f}", f"{r['over_predict']:.2f}x"])
    title = (
        f"Methods: ms per image at batch {methods['batch']} through Tf1SavedModel (p50 of the batch "
        "call / batch), relative to serving_default"
    )
    return f"{title}\n{format_table(['method', 'signature', 'ms/image', 'vs predict'], rows)}"


def _competitors_table(competitors: dict[str, Any]) -> str:
    names = sorted({k for r in competitors["methods"].values() for k in r} - {"ours", "fastest", "speedup", "timings"})
    rows = []
    for method, r in competitors["methods"].items():
        verdict = "PASS" if r["speedup"] >= 2.0 else "MISS"
        rows.append([
            method, f"{r['ours']:.3f}", *(f"{r[n]:.3f}" if n in r else "-" for n in names),
            f"{r['speedup']:.2f}x", verdict,
        ])  # fmt: skip
    header = ["method", "ours", *names, "fastest/ours", "target >= 2x"]
    lines = [
        f"Competitors: ms per image at batch {competitors['batch']} (p50 of the batch call / batch; "
        "same logits model, images, targets and parameters)",
        format_table(header, rows),
    ]
    lines += [f"{name}: {state}" for name, state in competitors["libraries"].items() if state != "ok"]
    return "\n".join(lines)


def render(results: dict[str, Any], targets: Sequence[Target]) -> str:
    """The full printed report: machine line, tables, and the PASS/MISS summary."""
    machine = results["machine"]
    parts = [
        f"Machine: {machine['cpu_count']} CPUs, Python {machine['python']}, TensorFlow "
        f"{machine['tensorflow']} (noisy: medians of interleaved calls; ratios measured side by side)"
    ]
    if "exporter" in results:
        parts.append(_exporter_table(results["exporter"]))
    if "serving" in results:
        parts.append(_serving_table(results["serving"]))
    if "methods" in results:
        parts.append(_methods_table(results["methods"]))
    if "competitors" in results:
        parts.append(_competitors_table(results["competitors"]))
    parts.append("Summary\n" + "\n".join(t.line() for t in targets))
    return "\n\n".join(parts)
