"""saliency-serving benchmarks: ``python -m tests.benchmarks --workdir build/bench`` (``make bench``).

What is measured (the MNIST demo CNN with random weights, random inputs in [0, 1)):

* **exporter** — in one process, per-call p50 through the exported SavedModel loaded with the
  TF1 session loader (`exporter.Tf1SavedModel`, TF Serving's loading path): `explain` vs
  `serving_default` at batch 1, 32, 256; and the hand-written eager recipe (GradientTape over the
  Keras model's probabilities, numpy max-abs + min-max) on the same model and inputs.
  Targets: explain/predict <= 2.5x at batch 32 and 256; explain >= 5x faster than eager at batch 1.
* **serving** — the bundled server as a subprocess on 127.0.0.1 (`python -m model_server`, free
  ports); `explain` via `serving_client.ServingClient` (gRPC) and via REST (`http.client`,
  keep-alive, JSON `instances`) against the in-process session call at the same batch (1 and 32).
  Target: gRPC adds <= 1.0 ms at p50, batch 1 (issue 11).
* **methods** — the demo CNN exported with every explanation method (`WORKDIR/models/
  mnist_methods/1`); per method, ms per image at batch 32 through `Tf1SavedModel`, and the
  ratio to `serving_default`.
* **competitors** — per method at batch 32, ours against tf-keras-vis (Saliency, SmoothGrad,
  GradCAM) and Xplique (Saliency, SmoothGrad, IntegratedGradients, GradientInput) on the same
  model, images and parameters; a library that is not installed is skipped with the reason.
  Target: >= 2x faster than the fastest competitor, per method.
* **export_real** — `saliency-export` of ResNet50 at 224x224x3 (random weights) in a child
  process, wall time and peak RSS (targets <= 60 s, <= 3 GiB); then every keras.applications
  family at its smallest input: export seconds, finite-difference error, saliency difference
  (`bench_export_real.py`).
* **cpp_loader** — `serving_default` and `explain` at batch 1, 32, 256 through TF's C++ loader
  session (`TF_LoadSessionFromSavedModel` + `TF_SessionRun` in a child process, no Python
  between runs: the figure closest to TF Serving's own) beside the TF1 Python session
  (`bench_cpp_loader.py`).
* **real** — issue 11: ResNet50V2, MobileNetV3Small, EfficientNetB0, ConvNeXtTiny at 64x64 and
  ResNet50 at 224x224, batch 32, random weights: explain/predict through the C++ loader and
  the bundled server over gRPC (target <= 2.3x), SmoothGrad/IG cost on ResNet50V2, the peers
  on ResNet50V2, peak RSS, and the demo CNN at batch 1 with TF's default vs the shipped
  TF_ENABLE_ONEDNN_OPTS=1 (`bench_real.py`). Exports are cached in ``WORKDIR/real``.

Every benchmark runs with the shipped TF runtime defaults (`model_server._tf_env`), set
before TensorFlow loads. A PNG chart goes to ``WORKDIR/bench.png`` when matplotlib is there.

Variants are interleaved call by call (rotating order) after a warmup, so load spikes on a noisy
machine hit every variant alike; ratios come from the same run. Nothing is asserted: targets are
reported PASS/MISS and the process exits 0 unless a benchmark fails to run.

Output: the tables on stdout and ``WORKDIR/results.json`` (all percentiles, the targets, the
machine); the export lives in ``WORKDIR/models/mnist/1`` and the server's log in
``WORKDIR/server.log``. Options: ``--only exporter|serving|methods|competitors|export_real|
cpp_loader|real``. ``real`` takes ~5 minutes on 2 cores with its exports cached (10-15 the first
time); the rest about 4-5 minutes.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The shipped runtime defaults (TF_ENABLE_ONEDNN_OPTS=1 unless set), before TensorFlow loads:
# this process runs the TF1 session, the peers and the exports as the server does.
from model_server._tf_env import apply_defaults  # noqa: E402

apply_defaults()

import argparse  # noqa: E402 - the environment variable must be set before TensorFlow loads
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

BENCHMARKS = ("exporter", "serving", "methods", "competitors", "export_real", "cpp_loader", "real")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="python -m tests.benchmarks",
        description="Benchmark the explain signature (in-process) and the serving path (gRPC, REST).",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("build/bench"),
        help="export, server log and results.json go here (default: build/bench)",
    )
    parser.add_argument(
        "--only",
        choices=BENCHMARKS,
        action="append",
        help="run only this benchmark (repeatable; default: all)",
    )
    return parser


def _machine() -> dict[str, Any]:
    import tensorflow as tf

    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average_at_start": os.getloadavg()[0],
        "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
    }


def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def _say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _run_methods(model: Any, workdir: Path, selected: list[str], results: dict[str, Any]) -> None:
    from exporter import Tf1SavedModel
    from tests.benchmarks import bench_methods

    _say("exporting the MNIST CNN with every explanation method (verification included)")
    started = time.perf_counter()
    export_dir, methods_config = bench_methods.export_all_methods(model, workdir)
    _say(f"exported {', '.join(methods_config.enabled)} in {time.perf_counter() - started:.0f} s")
    with Tf1SavedModel(export_dir) as loaded:
        if "methods" in selected:
            _say(f"methods: every signature at batch {bench_methods.BATCH} vs serving_default")
            results["methods"] = bench_methods.run(loaded, methods_config.enabled)
        if "competitors" in selected:
            from tests.benchmarks import bench_competitors

            _say(f"competitors: ours vs tf-keras-vis / Xplique at batch {bench_methods.BATCH}")
            results["competitors"] = bench_competitors.run(model, loaded, methods_config)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the selected benchmarks, prints the report, writes results.json. Returns 0."""
    args = _parser().parse_args(argv)
    selected = args.only or list(BENCHMARKS)
    workdir: Path = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)

    from tests.benchmarks import _fixture, _report

    started = time.perf_counter()
    results: dict[str, Any] = {"machine": _machine()}
    model = _fixture.build_model()
    if "exporter" in selected or "serving" in selected or "cpp_loader" in selected or "real" in selected:
        _say(f"exporting the MNIST CNN to {workdir / 'models' / _fixture.MODEL_NAME}")
        export_dir = _fixture.export(model, workdir)
    if "methods" in selected or "competitors" in selected:
        _run_methods(model, workdir, selected, results)
    if "exporter" in selected:
        from tests.benchmarks import bench_exporter

        _say(
            "exporter: predict / explain / eager at batch "
            + ", ".join(map(str, bench_exporter.BATCHES))
        )
        results["exporter"] = bench_exporter.run(model, export_dir)
    if "serving" in selected:
        from tests.benchmarks import bench_serving

        _say(
            "serving: in-process / gRPC / REST explain at batch "
            + ", ".join(map(str, bench_serving.BATCHES))
        )
        results["serving"] = bench_serving.run(export_dir, export_dir.parent, workdir)
    if "cpp_loader" in selected:
        from tests.benchmarks import bench_cpp_loader

        _say("cpp_loader: predict / explain through TF's C++ loader session and the TF1 session")
        results["cpp_loader"] = bench_cpp_loader.run(export_dir)
    if "export_real" in selected:
        from tests.benchmarks import bench_export_real

        _say("export_real: ResNet50 224x224x3 (child process), then each keras.applications family")
        results["export_real"] = bench_export_real.run(workdir / "real")
    if "real" in selected:
        from tests.benchmarks import bench_real

        bench_real.run_all(workdir, export_dir, results, _say)
    results["seconds"] = time.perf_counter() - started
    results["machine"]["load_average_at_end"] = os.getloadavg()[0]

    targets = _report.evaluate_targets(results)
    if "real" in results:
        targets += bench_real.targets(results)
    results["targets"] = [t.as_dict() for t in targets]
    print(_report.render(results, targets))
    if "cpp_loader" in results:
        print("\n" + bench_cpp_loader.render(results["cpp_loader"]))
    if "export_real" in results:
        print("\n" + bench_export_real.render(results["export_real"]))
    if "real" in results:
        print("\n" + bench_real.render(results))
    out = workdir / "results.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    try:
        from tests.benchmarks import _chart

        print(f"Wrote {_chart.write(results, workdir / 'bench.png')}")
    except ImportError as error:  # matplotlib is in make bench's install line only
        print(f"No chart: {error}")
    print(f"\nWrote {out} ({results['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
