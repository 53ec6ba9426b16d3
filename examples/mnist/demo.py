"""`make demo`: the whole product, end to end, on MNIST.

1. train the classic MNIST CNN (or reuse the cached one),
2. export it with the `explain` signature (or reuse the export of that same model),
3. start the bundled TF-Serving-compatible server in the background on free ports,
4. ask it over gRPC, with `serving_client`, to explain a dozen test digits,
5. write one overlay per digit and a summary grid, print accuracy and paths,
6. stop the server, also when a step fails.

Run: `python -m examples.mnist.demo --workdir build/demo` (what `make demo` does).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from model_server import ServerProcess
from serving_client.report import ReportError, read_report

__all__ = ["main"]

MODEL_NAME = "mnist"
NUM_DIGITS = 12


def _say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def _latest_matching_export(base_path: Path, model_hash: str) -> Path | None:
    """The newest existing version exported from the very same model file, if any."""
    if not base_path.is_dir():
        return None
    versions = sorted((int(p.name) for p in base_path.iterdir() if p.name.isdigit()), reverse=True)
    for version in versions:
        try:
            if read_report(base_path / str(version)).model.hash == model_hash:
                return base_path / str(version)
        except ReportError:
            continue
    return None


def _export(model_path: Path, model: Any, base_path: Path, samples: np.ndarray) -> Path:
    from exporter import ExportConfig, export_model
    from exporter._loading import model_fingerprint

    existing = _latest_matching_export(base_path, model_fingerprint(model, model_path))
    if existing is not None:
        _say(f"reusing the export of this model: {existing}")
        return existing
    config = ExportConfig(name=MODEL_NAME, class_names=tuple(str(d) for d in range(10)))
    path = export_model(model_path, base_path, config=config, samples=samples)
    _say(f"exported and verified through the TF1 session loader: {path}")
    return path


def _pick_digits(labels: np.ndarray, count: int) -> np.ndarray:
    """The first test example of each digit 0–9, then the next examples in order."""
    firsts = [int(np.flatnonzero(labels == d)[0]) for d in range(10)]
    rest = [i for i in range(len(labels)) if i not in firsts]
    return np.array((firsts + rest)[:count])


def run(workdir: Path, *, num_digits: int = NUM_DIGITS) -> dict[str, object]:
    """Runs the demo; returns the summary it prints (paths and figures)."""
    from examples.mnist.data import load_mnist
    from examples.mnist.model import train_or_load
    from serving_client import ServingClient, render

    workdir = Path(workdir)
    data = load_mnist()
    trained = train_or_load(workdir / "cache", data=data)
    verb = "trained" if trained.trained else "reused the cached"
    _say(f"{verb} MNIST CNN: test accuracy {trained.test_accuracy:.4f} ({trained.path})")

    base_path = workdir / "models" / MODEL_NAME
    export_path = _export(trained.path, trained.model, base_path, data.test_images[:8])

    chosen = _pick_digits(data.test_labels, num_digits)
    images, labels = data.test_images[chosen], data.test_labels[chosen]
    out_dir = workdir / "overlays"
    out_dir.mkdir(parents=True, exist_ok=True)

    log_path = workdir / "server.log"
    _say(f"starting the bundled model server in the background (log: {log_path})")
    with ServerProcess(MODEL_NAME, base_path, log_path=log_path) as server, ServingClient(
        server.grpc_target, MODEL_NAME, timeout=30.0
    ) as client:
        _say(f"server ready: gRPC {server.grpc_target}, REST 127.0.0.1:{server.rest_port}")
        explanation = client.explain(images)
        served_version = explanation.model_version
        correct = 0
        for start in range(0, len(data.test_images), 500):
            batch = client.predict(data.test_images[start : start + 500])
            correct += int((batch.predicted_class == data.test_labels[start : start + 500]).sum())
    _say("server stopped")
    served_accuracy = correct / len(data.test_images)

    rows, row_labels, overlays = [], [], []
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        predicted = int(explanation.predicted_class[i])
        probability = float(explanation.probabilities[i, predicted])
        saliency = explanation.saliency[i]
        blended = render.overlay(image[..., 0], saliency, alpha=0.55)
        path = render.save_png(
            blended, out_dir / f"digit_{i:02d}_label{int(label)}_pred{predicted}.png"
        )
        overlays.append(path)
        rows.append([image[..., 0], render.heatmap(saliency), blended])
        mark = "" if predicted == label else "  <-- wrong"
        row_labels.append(f"label {int(label)}  pred {predicted}  p={probability:.3f}")
        _say(
            f"digit {i:2d}: label {int(label)}, predicted {predicted} (p={probability:.3f}), "
            f"explained class {int(explanation.target_class[i])} -> {path}{mark}"
        )
    grid_path = render.save_png(render.grid(rows, labels=row_labels, scale=4), workdir / "summary_grid.png")
    summary: dict[str, object] = {
        "test_accuracy_keras": trained.test_accuracy,
        "test_accuracy_served": served_accuracy,
        "served_version": served_version,
        "export": str(export_path),
        "overlays": str(out_dir),
        "grid": str(grid_path),
    }
    (workdir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    _say(f"test accuracy: {trained.test_accuracy:.4f} (Keras), {served_accuracy:.4f} (served over gRPC, 10,000 digits)")
    _say(f"export:   {export_path}")
    _say(f"overlays: {out_dir}/ ({len(overlays)} PNGs)")
    _say(f"grid:     {grid_path}  (input | saliency | overlay per digit)")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry: returns 0 on success, 1 on failure (the server is stopped either way)."""
    parser = argparse.ArgumentParser(
        allow_abbrev=False, prog="python -m examples.mnist.demo", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--workdir", default="build/demo", help="where the cache, export and images go")
    parser.add_argument("--digits", type=int, default=NUM_DIGITS, help="how many test digits to explain")
    args = parser.parse_args(argv)
    try:
        run(Path(args.workdir), num_digits=args.digits)
    except Exception as error:  # the demo's contract: one clear line, non-zero exit
        print(f"[demo] FAILED: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
