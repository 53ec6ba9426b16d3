"""The figure closest to TF Serving's own: signatures timed through TF's C++ loader session.

`exporter._cpp_loader` loads the export with `TF_LoadSessionFromSavedModel` in a child
process (the C API over `tensorflow::LoadSavedModel`, as TF Serving does) and times
`TF_SessionRun` there in a loop: no Python between the runs but one ctypes call, the
input tensors built once. Beside it, the same signatures through the TF1 Python session
(`Tf1SavedModel.run`: feed_dict conversion and fetch in Python on every call). The two
alternate in blocks, so load spikes on a shared machine hit both.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.benchmarks._fixture import random_images
from tests.benchmarks._timing import Timing

__all__ = ["BATCHES", "render", "run"]

# batch → (timed runs per variant, blocks they are split into).
BATCHES: dict[int, tuple[int, int]] = {1: (60, 6), 32: (30, 6), 256: (10, 5)}
SIGNATURES = ("serving_default", "explain")


def run(export_dir: Path) -> dict[str, Any]:
    """Times predict and explain through the C++ loader's session and the TF1 session.

    Returns:
        {"library", "tf_version", "load_seconds", "batches": {batch: {"cpp_<sig>" | "tf1_<sig>":
        Timing dict, "cpp_explain_over_predict", "tf1_explain_over_predict"}}}
    """
    from exporter import Tf1SavedModel
    from exporter._cpp_loader import load_saved_model

    started = time.perf_counter()
    model = load_saved_model(export_dir)
    results: dict[str, Any] = {
        "library": str(model.runtime.library),
        "tf_version": model.runtime.version,
        "load_seconds": time.perf_counter() - started,
        "batches": {},
    }
    with model, Tf1SavedModel(export_dir) as saved:
        for batch, (runs, blocks) in BATCHES.items():
            images = random_images(batch, seed=batch)
            feed = {"images": images}
            samples: dict[str, list[float]] = {f"{k}_{s}": [] for k in ("cpp", "tf1") for s in SIGNATURES}
            for signature in SIGNATURES:  # warm both sessions' executors for this feed
                model.run(signature, feed)
                saved.run(signature, feed)
            per_block = max(1, runs // blocks)
            for _ in range(blocks):
                for signature in SIGNATURES:
                    samples[f"cpp_{signature}"].extend(
                        model.benchmark(signature, feed, repeats=per_block, warmup=0).tolist()
                    )
                    for _ in range(per_block):
                        t0 = time.perf_counter()
                        saved.run(signature, feed)
                        samples[f"tf1_{signature}"].append(time.perf_counter() - t0)
            timings = {name: Timing.from_seconds(values) for name, values in samples.items()}
            entry: dict[str, Any] = {name: t.as_dict() for name, t in timings.items()}
            for kind in ("cpp", "tf1"):
                entry[f"{kind}_explain_over_predict"] = (
                    timings[f"{kind}_explain"].p50_ms / timings[f"{kind}_serving_default"].p50_ms
                )
            results["batches"][batch] = entry
    return results


def render(results: dict[str, Any]) -> str:
    """A table: batch × (C++ session, TF1 session) p50 of predict and explain, and ratios."""
    lines = [
        f"C++ loader session (TF_SessionRun, TF {results['tf_version']}, TF Serving's runtime) vs "
        f"TF1 Python session, p50 ms (load {results['load_seconds']:.2f} s)",
        f"{'batch':>5}  {'C++ predict':>11}  {'C++ explain':>11}  {'ratio':>5}  "
        f"{'TF1 predict':>11}  {'TF1 explain':>11}  {'ratio':>5}",
    ]
    for batch, entry in results["batches"].items():
        lines.append(
            f"{batch:>5}  {entry['cpp_serving_default']['p50_ms']:>11.3f}  {entry['cpp_explain']['p50_ms']:>11.3f}  "
            f"{entry['cpp_explain_over_predict']:>5.2f}  {entry['tf1_serving_default']['p50_ms']:>11.3f}  "
            f"{entry['tf1_explain']['p50_ms']:>11.3f}  {entry['tf1_explain_over_predict']:>5.2f}"
        )
    return "\n".join(lines)


if __name__ == "__main__":  # a quick look without the rest of the benchmarks
    import sys

    outcome = run(Path(sys.argv[1]))
    print(render(outcome))
