"""Issue 11: explain vs predict on real architectures, through TF Serving's runtime and the server.

Models (Keras applications, random weights, 1000 classes): ResNet50V2, MobileNetV3Small,
EfficientNetB0 and ConvNeXtTiny at 64×64, ResNet50 at 224×224; batch 32, random inputs in
[0, 1). Each is exported once with the exporter's default verification and reused while the
exporter's sources, TensorFlow and the recipe stay the same (`WORKDIR/real/NAME/stamp.json`);
the export runs in a subprocess, whose wall time and peak RSS (`ru_maxrss`) are recorded.

Per model, four variants interleaved call by call, after a warmup:

- ``cpp predict`` / ``cpp explain``: one TF_SessionRun in the C++-loader child
  (`exporter._cpp_loader`, `TF_LoadSessionFromSavedModel`, TF Serving's runtime), timed there;
- ``grpc predict`` / ``grpc explain``: `ServingClient.predict` / `.explain` against the
  bundled server (`python -m model_server`, a subprocess on 127.0.0.1), timed here.

Both run with the shipped defaults (`model_server._tf_env`: TF_ENABLE_ONEDNN_OPTS=1), as
TF Serving in configs/. The C++ child's peak RSS (VmHWM) is read after loading and after the
runs (item 5, for ResNet50 at 224). `demo_batch1` compares the demo CNN at batch 1 through two
C++ children, oneDNN off (TF's own default on AMD CPUs; on Intel TF turns it on) against the shipped one.

Targets: explain/predict <= 2.3x for every model and path; demo CNN batch-1 explain with the
shipped defaults no slower than with oneDNN off (ratio <= 1.0, beyond noise).
"""

from __future__ import annotations

import hashlib
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tests.benchmarks._timing import interleaved

__all__ = ["BATCH", "MODELS", "TARGET_RATIO", "export_cached", "run", "run_demo_batch1"]

BATCH = 32
TARGET_RATIO = 2.3
#: name → (keras.applications class, H = W). Random weights: timing needs no training.
MODELS: dict[str, tuple[str, int]] = {
    "resnet50v2": ("ResNet50V2", 64),
    "mobilenetv3small": ("MobileNetV3Small", 64),
    "efficientnetb0": ("EfficientNetB0", 64),
    "convnexttiny": ("ConvNeXtTiny", 64),
    "resnet50_224": ("ResNet50", 224),
}
#: Timed calls per variant (after one warmup each): fewer for the big input.
REPETITIONS = {"resnet50_224": 5}
DEFAULT_REPETITIONS = 9
#: The ResNet50V2 export also carries these methods (small n and m: SmoothGrad costs about
#: n × explain and IG (m + 1) × explain, and a bench run must stay short).
METHODS_MODEL = "resnet50v2"
_RSS_LINE = "peak-rss-mib: "
METHODS = {
    "enabled": ("vanilla", "smoothgrad", "integrated_gradients"),
    "smoothgrad": {"samples": 4},
    "integrated_gradients": {"steps": 4},
}


def _sources_hash(name: str) -> str:
    import importlib.metadata

    digest = hashlib.sha256()
    root = Path(__file__).resolve().parents[2] / "exporter"
    for path in sorted(root.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    recipe = {"model": MODELS[name], "methods": METHODS if name == METHODS_MODEL else None, "max_batch": BATCH}
    digest.update(json.dumps(recipe, sort_keys=True).encode())
    digest.update(importlib.metadata.version("tensorflow").encode())
    return digest.hexdigest()[:16]


def _export_main(name: str, base: str) -> None:
    # Runs in the export subprocess (`python -m tests.benchmarks.bench_real export NAME BASE`).
    import keras

    from exporter import ExportConfig, SaliencyExporter, VerificationConfig
    from exporter._config import LimitsConfig, MethodsConfig, methods_from_record
    from serving_client.contract import SERVING_DEFAULT, signature_name

    application, size = MODELS[name]
    keras.utils.set_random_seed(0)
    model = getattr(keras.applications, application)(weights=None, input_shape=(size, size, 3))
    methods = methods_from_record(METHODS) if name == METHODS_MODEL else MethodsConfig()
    config = ExportConfig(
        name=name,
        methods=methods,
        # Random weights put many ReLUs near their kink; the 1e-3 step keeps the
        # finite-difference check meaningful (as the demo CNN's bench export).
        verification=VerificationConfig(fd_epsilon=1e-3),
        # The measured default maximum fits a 2 GiB budget per request, under 32 images for
        # ResNet50 at 224 (8) and ConvNeXtTiny (18); the benchmark's batch is 32.
        limits=LimitsConfig(
            max_batch={sig: BATCH for sig in (SERVING_DEFAULT, *(signature_name(m) for m in methods.enabled))}
        ),
    )
    samples = np.random.default_rng(7).random((4, size, size, 3), dtype=np.float32)
    SaliencyExporter(model, config).write(Path(base), 1, samples=samples)
    # ru_maxrss is in KiB on Linux: this process (Keras model, export, TF1 verification) and
    # its largest child (the C++-loader check), as `/usr/bin/time -v` would report them.
    peaks = {
        "self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "children": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }
    print(_RSS_LINE + json.dumps(peaks), flush=True)


def export_cached(name: str, workdir: Path, say: Callable[[str], None] = print) -> dict[str, Any]:
    """The export of `name` under WORKDIR/real/NAME/1, made in a subprocess unless up to date.

    Returns:
        ``{"path", "export_seconds", "export_peak_rss_mib", "exported_at", "cached"}``.

    Raises:
        RuntimeError: The export subprocess failed (its last output lines included).
    """
    import shutil

    base = workdir / "real" / name
    stamp_path = base / "stamp.json"
    fingerprint = _sources_hash(name)
    if stamp_path.is_file():
        stamp = json.loads(stamp_path.read_text())
        if stamp.get("fingerprint") == fingerprint and (base / "1").is_dir():
            return {**stamp["export"], "path": str(base / "1"), "cached": True}
    shutil.rmtree(base, ignore_errors=True)
    say(f"real: exporting {name} (verification included; reused by later runs)")
    started = time.perf_counter()
    process = subprocess.Popen(  # noqa: S603 - this module, fixed arguments
        [sys.executable, "-m", "tests.benchmarks.bench_real", "export", name, str(base)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output, _ = process.communicate()
    seconds = time.perf_counter() - started
    lines = output.splitlines()
    if process.returncode != 0 or not lines or not lines[-1].startswith(_RSS_LINE):
        tail = "\n".join(lines[-15:])
        raise RuntimeError(f"Exporting {name} failed (exit {process.returncode}):\n{tail}")
    peaks = json.loads(lines[-1][len(_RSS_LINE):])
    export = {
        "export_seconds": seconds,
        "export_peak_rss_mib": peaks["self"],
        "export_cpp_check_peak_rss_mib": peaks["children"],
        "exported_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    stamp_path.write_text(json.dumps({"fingerprint": fingerprint, "export": export}, indent=2))
    return {**export, "path": str(base / "1"), "cached": False}


def _vm_hwm_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _wall(call: Callable[[], object]) -> Callable[[], float]:
    def timed() -> float:
        start = time.perf_counter()
        call()
        return time.perf_counter() - start

    return timed


def _cpp(model: Any, signature: str, inputs: dict[str, np.ndarray]) -> Callable[[], float]:
    return lambda: float(model.benchmark(signature, inputs, repeats=1, warmup=0)[0])


def run_model(name: str, export: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Times cpp/grpc × predict/explain (and the extra methods of the methods model)."""
    from exporter._cpp_loader import CppRuntime
    from model_server import ServerProcess
    from serving_client import ServingClient

    size = MODELS[name][1]
    images = np.random.default_rng(BATCH).random((BATCH, size, size, 3), dtype=np.float32)
    path = Path(export["path"])
    with (
        CppRuntime() as runtime,
        runtime.load(path) as model,
        ServerProcess(name, path.parent, log_path=workdir / f"server_{name}.log", poll_seconds=0) as server,
        ServingClient(server.grpc_target, name, timeout=600.0) as client,
    ):
        rss_loaded = _vm_hwm_mib(runtime.pid)
        feed = {"images": images}
        calls = {
            "cpp predict": _cpp(model, "serving_default", feed),
            "cpp explain": _cpp(model, "explain", feed),
            "grpc predict": _wall(lambda: client.predict(images)),
            "grpc explain": _wall(lambda: client.explain(images)),
        }
        if name == METHODS_MODEL:
            for method in METHODS["enabled"][1:]:
                calls[f"cpp {method}"] = _cpp(model, f"explain_{method}", feed)
        timings = interleaved(calls, REPETITIONS.get(name, DEFAULT_REPETITIONS), 1, self_timed=True)
        rss_after = _vm_hwm_mib(runtime.pid)
    p50 = {k: t.p50_ms for k, t in timings.items()}
    result: dict[str, Any] = {
        "size": size,
        "batch": BATCH,
        "timings": {k: t.as_dict() for k, t in timings.items()},
        "cpp_ratio": p50["cpp explain"] / p50["cpp predict"],
        "grpc_ratio": p50["grpc explain"] / p50["grpc predict"],
        "cpp_peak_rss_mib_loaded": rss_loaded,
        "cpp_peak_rss_mib_after_explain": rss_after,
        **{k: v for k, v in export.items() if k != "path"},
    }
    if name == METHODS_MODEL:
        result["methods"] = {
            method: {"over_explain": p50[f"cpp {method}"] / p50["cpp explain"], "gradients": count}
            for method, count in (
                ("smoothgrad", METHODS["smoothgrad"]["samples"]),
                ("integrated_gradients", METHODS["integrated_gradients"]["steps"] + 1),
            )
        }
    return result


def run(workdir: Path, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Exports (or reuses) every model in `MODELS` and times it; see the module docstring.

    Returns:
        ``{"settings": {...}, "models": {name: {...}}}``; a model that fails to export or run
        is recorded as ``{"error": reason}``.
    """
    from model_server._tf_env import child_environment

    environment = child_environment()
    results: dict[str, Any] = {
        "settings": {k: environment.get(k) for k in ("TF_ENABLE_ONEDNN_OPTS", "OMP_NUM_THREADS")},
        "models": {},
    }
    for name in MODELS:
        try:
            export = export_cached(name, workdir, say)
            say(f"real: {name} at {MODELS[name][1]}×{MODELS[name][1]}, batch {BATCH}: C++ loader and gRPC")
            results["models"][name] = run_model(name, export, workdir)
        except Exception as error:  # noqa: BLE001 - one model failing must not hide the rest
            results["models"][name] = {"error": f"{type(error).__name__}: {str(error)[:500]}"}
    return results


def run_demo_batch1(export_dir: Path, repetitions: int = 30) -> dict[str, Any]:
    """Demo CNN at batch 1: oneDNN off (TF's default on AMD CPUs) vs the shipped defaults, two C++ children.

    Each timed call is the median of 20 TF_SessionRuns in the child, the variants rotating.
    """
    from exporter._cpp_loader import CppRuntime
    from tests.benchmarks._fixture import random_images

    images = {"images": random_images(1, seed=1)}
    variants = {"onednn_off": {"TF_ENABLE_ONEDNN_OPTS": "0"}, "shipped": {}}
    runtimes = {name: CppRuntime(env=env) for name, env in variants.items()}
    try:
        models = {name: runtime.load(export_dir) for name, runtime in runtimes.items()}

        def call(model: Any, signature: str) -> Callable[[], float]:
            return lambda: float(np.median(model.benchmark(signature, images, repeats=20, warmup=0)))

        calls = {}
        for variant, model in models.items():
            calls[f"{variant} predict"] = call(model, "serving_default")
            calls[f"{variant} explain"] = call(model, "explain")
        timings = interleaved(calls, repetitions, 2, self_timed=True)
    finally:
        for runtime in runtimes.values():
            runtime.close()
    p50 = {k: t.p50_ms for k, t in timings.items()}
    return {
        "timings": {k: t.as_dict() for k, t in timings.items()},
        "explain_shipped_over_onednn_off": p50["shipped explain"] / p50["onednn_off explain"],
        "predict_shipped_over_onednn_off": p50["shipped predict"] / p50["onednn_off predict"],
    }


def run_competitors(workdir: Path, repetitions: int = 3) -> dict[str, Any]:
    """Ours (the ResNet50V2 export through the TF1 session) vs tf-keras-vis and Xplique.

    Same images, targets and parameters (`METHODS`), in this process (its TF settings are the
    shipped ones); see `bench_competitors`.
    """
    import keras

    from exporter import Tf1SavedModel
    from exporter._config import methods_from_record
    from tests.benchmarks import bench_competitors

    application, size = MODELS[METHODS_MODEL]
    keras.utils.set_random_seed(0)
    model = getattr(keras.applications, application)(weights=None, input_shape=(size, size, 3))
    images = np.random.default_rng(BATCH).random((BATCH, size, size, 3), dtype=np.float32)
    with Tf1SavedModel(workdir / "real" / METHODS_MODEL / "1") as loaded:
        return bench_competitors.run(model, loaded, methods_from_record(METHODS), images=images, repetitions=repetitions)


def run_all(workdir: Path, demo_export: Path, results: dict[str, Any], say: Callable[[str], None]) -> None:
    """Fills results["real"], ["demo_batch1"] and ["real_competitors"] (each failure recorded)."""
    say("real: ResNet50V2, MobileNetV3Small, EfficientNetB0, ConvNeXtTiny at 64x64 and ResNet50 at "
        "224x224, batch 32, through the C++ loader and gRPC (exports are reused)")  # fmt: skip
    results["real"] = run(workdir, say)
    say("real: demo CNN at batch 1, oneDNN off (TF's default on AMD CPUs) vs the shipped defaults")
    try:
        results["demo_batch1"] = run_demo_batch1(demo_export)
    except Exception as error:  # noqa: BLE001
        results["demo_batch1"] = {"error": f"{type(error).__name__}: {error}"}
    say("real: peers (tf-keras-vis, Xplique) on ResNet50V2 at 64x64, batch 32")
    try:
        results["real_competitors"] = run_competitors(workdir)
    except Exception as error:  # noqa: BLE001 - the peers are optional
        results["real_competitors"] = {"error": f"{type(error).__name__}: {error}"}


def targets(results: dict[str, Any]) -> list[Any]:
    """Issue 11's targets against what was measured (None = not measured: SKIP)."""
    from tests.benchmarks._report import Target

    found: list[Any] = []
    for name, r in results.get("real", {}).get("models", {}).items():
        for path in ("cpp", "grpc"):
            found.append(Target(f"{name}: explain/predict via {path}, batch {BATCH}", r.get(f"{path}_ratio"), TARGET_RATIO, False, "x"))
    demo = results.get("demo_batch1", {})
    found.append(Target("demo CNN batch 1 explain: shipped / oneDNN off", demo.get("explain_shipped_over_onednn_off"), 1.0, False, "x"))
    for method, r in results.get("real_competitors", {}).get("methods", {}).items():
        found.append(Target(f"{METHODS_MODEL} {method}: fastest peer ({r['fastest']}) / ours", r["speedup"], 2.0, True, "x"))
    return found  # fmt: skip


def render(results: dict[str, Any]) -> str:
    """The real-model tables (models × paths, methods, batch-1 demo, memory, peers)."""
    from tests.benchmarks._report import format_table

    real = results.get("real", {})
    rows = []
    for name, r in real.get("models", {}).items():
        if "error" in r:
            rows.append([name, "-", "-", "-", "-", "-", "-", "-", r["error"][:60]])
            continue
        t = r["timings"]
        rows.append([
            name, f"{r['size']}", f"{t['cpp predict']['p50_ms']:.0f}", f"{t['cpp explain']['p50_ms']:.0f}",
            f"{r['cpp_ratio']:.2f}x", f"{t['grpc predict']['p50_ms']:.0f}", f"{t['grpc explain']['p50_ms']:.0f}",
            f"{r['grpc_ratio']:.2f}x", f"{r.get('cpp_peak_rss_mib_after_explain') or 0:.0f}",
        ])  # fmt: skip
    header = ["model", "HxW", "cpp predict", "cpp explain", "cpp ratio", "gRPC predict",
              "gRPC explain", "gRPC ratio", "cpp RSS MiB"]  # fmt: skip
    parts = [
        f"Real models: p50 ms at batch {BATCH}, random weights; settings {real.get('settings')} "
        "(cpp = TF_SessionRun in the C++-loader child; gRPC = ServingClient round trip to the "
        "bundled server; RSS = the child's VmHWM after the runs)",
        format_table(header, rows),
    ]
    def mib(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}"

    exports = [[name, f"{r['export_seconds']:.0f}", mib(r["export_peak_rss_mib"]),
                mib(r["export_cpp_check_peak_rss_mib"]), r["exported_at"]]
               for name, r in real.get("models", {}).items() if "export_seconds" in r]  # fmt: skip
    if exports:
        parts.append(
            "Exports with verification (subprocess; cached until the exporter changes): wall s, "
            "peak RSS MiB of the export process and of its C++-loader check\n"
            + format_table(["model", "wall s", "RSS MiB", "C++ check MiB", "exported"], exports)
        )
    methods = real.get("models", {}).get(METHODS_MODEL, {}).get("methods")
    if methods:
        parts.append("\n".join(
            [f"{METHODS_MODEL} methods through the C++ loader, relative to explain (expected ≈ gradients):"]
            + [f"  {m}: {r['over_explain']:.2f}x for {r['gradients']} gradients" for m, r in methods.items()]
        ))  # fmt: skip
    demo = results.get("demo_batch1", {})
    if "timings" in demo:
        t = demo["timings"]
        parts.append(
            "Demo CNN at batch 1 through the C++ loader, p50 ms: oneDNN off (TF's default on AMD CPUs) predict "
            f"{t['onednn_off predict']['p50_ms']:.3f} explain {t['onednn_off explain']['p50_ms']:.3f}; "
            f"shipped predict {t['shipped predict']['p50_ms']:.3f} explain {t['shipped explain']['p50_ms']:.3f} "
            f"(explain shipped/oneDNN off {demo['explain_shipped_over_onednn_off']:.2f}x)"
        )
    peers = results.get("real_competitors", {})
    if "methods" in peers:
        from tests.benchmarks._report import _competitors_table

        parts.append(f"Peers on {METHODS_MODEL} 64x64 (same process settings):\n" + _competitors_table(peers))
    elif "error" in peers:
        parts.append(f"Peers on {METHODS_MODEL}: not run ({peers['error'][:200]})")
    return "\n\n".join(parts)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "export":
        from model_server._tf_env import apply_defaults

        apply_defaults()
        _export_main(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit("usage: python -m tests.benchmarks.bench_real export NAME BASE_DIR")
