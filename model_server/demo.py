"""`make demo`: the whole product, end to end, on MNIST.

1. train the classic MNIST CNN (or reuse the cached one),
2. export it with the `explain` signature (or reuse the export of that same model),
3. start the bundled TF-Serving-compatible server in the background on free ports,
4. ask it over gRPC, with `serving_client`, to explain a dozen test digits,
5. write one overlay per digit and a summary grid, print accuracy and paths,
6. stop the server, also when a step fails.

Run: `python -m model_server.demo --workdir build/demo`.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["main"]

MODEL_NAME = "mnist"
NUM_DIGITS = 12
_PORT_LINES = {
    "grpc": re.compile(r"^Running gRPC ModelServer at ([\w.\-]+):(\d+)"),
    "rest": re.compile(r"^Exporting HTTP/REST API at ([\w.\-]+):(\d+)"),
}
_READY_LINE = re.compile(r"^All models AVAILABLE: ")


def _say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


class ServerProcess:
    """The bundled server as a background process that is always stopped on exit."""

    def __init__(self, base_path: Path, *, startup_timeout: float = 180.0) -> None:
        self.base_path = base_path
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[str] | None = None
        self.ports: dict[str, int] = {}
        self._lines: queue.Queue[str | None] = queue.Queue()

    def _pump(self, stdout) -> None:
        for line in stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def __enter__(self) -> ServerProcess:
        command = [
            sys.executable,
            "-m",
            "model_server",
            "--port=0",
            "--rest_api_port=auto",
            f"--model_name={MODEL_NAME}",
            f"--model_base_path={self.base_path.resolve()}",
            "--file_system_poll_wait_seconds=1",
        ]
        _say("starting the bundled model server: " + " ".join(command[1:]))
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
        )
        threading.Thread(target=self._pump, args=(self.process.stdout,), daemon=True).start()
        try:
            self._wait_until_available()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_until_available(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                raise RuntimeError(
                    f"The model server exited with code {self.process.wait()} before the model "
                    "was AVAILABLE; run it by hand to see its log: python -m model_server "
                    f"--model_name={MODEL_NAME} --model_base_path={self.base_path}"
                )
            for kind, pattern in _PORT_LINES.items():
                match = pattern.match(line)
                if match:
                    self.ports[kind] = int(match.group(2))
            if _READY_LINE.match(line) and "grpc" in self.ports:
                _say(f"server ready: gRPC 127.0.0.1:{self.ports['grpc']}, REST 127.0.0.1:{self.ports.get('rest')}")
                return
        raise TimeoutError(f"The model server was not AVAILABLE within {self.startup_timeout:.0f} s.")

    def __exit__(self, *exc: object) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=30)
            _say(f"server stopped (exit code {code})")
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            _say("server did not stop within 30 s; killed")


def _latest_matching_export(base_path: Path, model_hash: str) -> Path | None:
    """The newest existing version exported from the very same model file, if any."""
    if not base_path.is_dir():
        return None
    versions = sorted((int(p.name) for p in base_path.iterdir() if p.name.isdigit()), reverse=True)
    for version in versions:
        report = base_path / str(version) / "assets.extra" / "export_report.json"
        try:
            if json.loads(report.read_text())["model"]["hash"] == model_hash:
                return base_path / str(version)
        except (OSError, ValueError, KeyError):
            continue
    return None


def _export(model_path: Path, model, base_path: Path, samples: np.ndarray) -> Path:
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
    from exporter.demo_model import train_or_load
    from exporter.mnist import load_mnist
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

    with ServerProcess(base_path) as server, ServingClient(
        f"127.0.0.1:{server.ports['grpc']}", MODEL_NAME, timeout=30.0
    ) as client:
        explanation = client.explain(images)
        served_version = explanation.model_version
        correct = 0
        for start in range(0, len(data.test_images), 500):
            batch = client.predict(data.test_images[start : start + 500])
            correct += int((batch.predicted_class == data.test_labels[start : start + 500]).sum())
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
    summary = {
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
    parser = argparse.ArgumentParser(prog="python -m model_server.demo", description=__doc__.split("\n")[0])
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
