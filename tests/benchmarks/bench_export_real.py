"""Issue "real models": every keras.applications family exports and verifies; ResNet50 at 224.

- ``families``: each family's smallest member at the smallest input it accepts, random
  weights (`weights=None`), 10 classes, exported with default settings through
  `SaliencyExporter.write` (so verified: TF1 and C++ loaders, saliency vs the eager
  reference, gradient vs float64 finite differences). Per family: export seconds, the
  finite-difference error (relative to the largest gradient) and the largest saliency
  difference from the eager reference.
- ``resnet50``: `saliency-export` on ResNet50 at 224x224x3 (random weights, 1000 classes,
  default settings) in a child process; wall time and the child's peak RSS (`wait4`).
  Targets: <= 60 s and <= 3 GiB.

Also run as a command: ``python -m tests.benchmarks.bench_export_real --workdir DIR
[--family NAME ...] [--resnet50]`` prints one JSON line per measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from serving_client.report import parse_report

__all__ = ["FAMILIES", "RESNET50_TARGETS", "export_family", "export_resnet50", "run"]

#: family → (keras.applications constructor, smallest accepted input side, extra kwargs).
FAMILIES: dict[str, tuple[str, int, dict[str, Any]]] = {
    "ConvNeXt": ("ConvNeXtTiny", 32, {}),
    "DenseNet": ("DenseNet121", 32, {}),
    "EfficientNet": ("EfficientNetB0", 32, {}),
    "EfficientNetV2": ("EfficientNetV2B0", 32, {}),
    "MobileNet": ("MobileNet", 32, {"alpha": 0.25}),
    "MobileNetV2": ("MobileNetV2", 32, {"alpha": 0.35}),
    "MobileNetV3": ("MobileNetV3Small", 32, {}),
    "NASNetMobile": ("NASNetMobile", 32, {}),
    "ResNet": ("ResNet50", 32, {}),
    "ResNetV2": ("ResNet50V2", 32, {}),
    "VGG": ("VGG16", 32, {}),
    "Xception": ("Xception", 71, {}),
    "InceptionV3": ("InceptionV3", 75, {}),
    "InceptionResNetV2": ("InceptionResNetV2", 75, {}),
}
#: RegNet and ResNetRS are tf_keras (Keras 2) applications only: Keras 3, which the exporter
#: uses, does not ship them (keras.applications has no RegNet*/ResNetRS*).
NOT_IN_KERAS_3 = ("RegNet", "ResNetRS")
NUM_CLASSES = 10
RESNET50_TARGETS = {"seconds": 60.0, "peak_rss_gib": 3.0}


def build_family(family: str) -> Any:
    """The family's model with random weights at its smallest input."""
    import keras

    constructor, side, kwargs = FAMILIES[family]
    keras.utils.set_random_seed(0)
    return getattr(keras.applications, constructor)(
        weights=None, input_shape=(side, side, 3), classes=NUM_CLASSES, **kwargs
    )


def export_family(family: str, workdir: Path, num_samples: int | None = None) -> dict[str, Any]:
    """Builds and exports one family; returns its figures (raises if verification fails).

    Args:
        family: A key of `FAMILIES`.
        workdir: The export goes to `workdir/<family>/1`.
        num_samples: Verification samples (default: the config's).
    """
    import dataclasses

    from exporter import ExportConfig, SaliencyExporter

    model = build_family(family)
    config = ExportConfig(name=family)
    if num_samples is not None:
        config = config.replace(verification=dataclasses.replace(config.verification, num_samples=num_samples))
    started = time.perf_counter()
    result = SaliencyExporter(model, config).write(workdir / family)
    seconds = time.perf_counter() - started
    v = result.report["verification"]
    return {
        "family": family,
        "model": FAMILIES[family][0],
        "input": FAMILIES[family][1],
        "parameters": int(model.count_params()),
        "logits": result.report["model"]["logits"]["kind"],
        "export_seconds": round(seconds, 1),
        "samples": v["samples"],
        "fd_differentiated": v["finite_differences"]["differentiated"],
        "fd_error": v["finite_differences"]["max_error_relative_to_max_gradient"],
        "saliency_max_abs_diff": max(v["saliency_predicted_class_max_abs_diff"], v["saliency_other_class_max_abs_diff"]),
        "logits_max_abs_diff": v["logits_max_abs_diff"],
    }


def export_resnet50(workdir: Path) -> dict[str, Any]:
    """`saliency-export` of ResNet50 at 224x224x3 in a child process: seconds and peak RSS."""
    import keras

    workdir.mkdir(parents=True, exist_ok=True)
    model_file = workdir / "resnet50_224.keras"
    if not model_file.exists():
        keras.utils.set_random_seed(0)
        keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3)).save(model_file)
    output = workdir / "resnet50"
    command = [
        str(Path(sys.executable).parent / "saliency-export"),
        "--model", str(model_file), "--output", str(output), "--report", str(workdir / "resnet50_report.json"),
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    started = time.perf_counter()
    with (workdir / "resnet50_export.log").open("w") as log:
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, env=env, text=True)
        _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"saliency-export failed; see {workdir / 'resnet50_export.log'}")
    report_path = workdir / "resnet50_report.json"
    report = parse_report(json.loads(report_path.read_text()), path=report_path)
    fd = report.verification.raw["finite_differences"]
    return {
        "seconds": round(seconds, 1),
        # CPU seconds of the child: on a shared machine, wall time also measures the neighbours.
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "load_average_1min": round(os.getloadavg()[0], 1),
        "peak_rss_gib": round(usage.ru_maxrss / 2**20, 2),  # ru_maxrss is in KiB on Linux
        "fd_error": fd["max_error_relative_to_max_gradient"],
        "fd_differentiated": fd["differentiated"],
        "targets": RESNET50_TARGETS,
    }


def run(workdir: Path, families: Sequence[str] | None = None) -> dict[str, Any]:
    """ResNet50 at 224, then every family; returns the figures for results.json."""
    out: dict[str, Any] = {"resnet50_224": export_resnet50(workdir / "resnet50")}
    out["families"] = [export_family(family, workdir / "families") for family in families or FAMILIES]
    return out


def render(results: dict[str, Any]) -> str:
    """The results as text tables."""
    r = results["resnet50_224"]
    lines = [
        "export of real models",
        f"  ResNet50 224x224x3: {r['seconds']:.1f} s (target <= {r['targets']['seconds']:.0f}), "
        f"peak RSS {r['peak_rss_gib']:.2f} GiB (target <= {r['targets']['peak_rss_gib']:.0f}); "
        f"{r['cpu_seconds']:.0f} CPU s, load average {r['load_average_1min']}",
        f"  {'family':<18} {'model':<18} {'input':>5} {'export s':>9} {'FD error':>10} {'saliency diff':>14}",
    ]
    for f in results["families"]:
        lines.append(
            f"  {f['family']:<18} {f['model']:<18} {f['input']:>5} {f['export_seconds']:>9.1f} "
            f"{f['fd_error']:>10.2e} {f['saliency_max_abs_diff']:>14.2e}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: one JSON line per measurement."""
    parser = argparse.ArgumentParser(allow_abbrev=False, prog="python -m tests.benchmarks.bench_export_real")
    parser.add_argument("--workdir", type=Path, default=Path("build/bench/real"))
    parser.add_argument("--family", action="append", choices=sorted(FAMILIES))
    parser.add_argument("--resnet50", action="store_true", help="only the ResNet50 224 measurement")
    parser.add_argument("--samples", type=int, help="verification samples per family")
    args = parser.parse_args(argv)
    if args.resnet50:
        print(json.dumps(export_resnet50(args.workdir / "resnet50")), flush=True)
        return 0
    failed = 0
    for family in args.family or FAMILIES:
        try:
            figures = export_family(family, args.workdir / "families", args.samples)
        except Exception as error:  # report the family and go on with the others
            failed += 1
            figures = {"family": family, "error": f"{type(error).__name__}: {error}"}
        print(json.dumps(figures), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    raise SystemExit(main())
