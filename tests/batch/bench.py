"""Throughput of batch explanations: Beam with 2 worker processes vs one in-process loop.

Run: ``python -m tests.batch.bench --model_base_path build/demo/models/mnist --workdir
build/bench-batch`` (``make bench-batch``).

Both sides explain the same 10,000 MNIST test digits (PNG bytes in TFRecords) with the same
signature, decoder and batch size. The loop is what a user writes without Beam: read the
records, decode, call the signature on batches in one process (TensorFlow's default threads:
all cores). The pipeline is ``saliency-batch`` on the DirectRunner in multi-processing mode,
2 workers with 1 TensorFlow thread each, Parquet output, no heatmaps; it also writes its rows,
which the loop does not, so the ratio is conservative.

Beam's start-up (worker processes importing TensorFlow, loading the model) is a fixed cost;
it is measured with a run on 64 digits and reported apart, so that the steady rate
``(N - 64) / (T_N - T_64)`` is what a large job sees. CPU cost per image is the user + system
time of every process (the launcher and its workers) over the images explained, with and
without the start-up. A second case runs integrated gradients (64 steps) on 1,000 digits with the
demo model exported with that method too, where the model, not the per-image overhead, dominates.
On a shared machine both sides get a share of the cores, so the load average is recorded too.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tests.batch import mnist_inputs

SMALL = 64
BATCH = 64


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def loop(model_base_path: str, inputs: Sequence[Path], signature: str = "explain") -> dict[str, float]:
    """Explain every record in ``inputs`` in this process; images/s and CPU ms per image."""
    import numpy as np
    import tensorflow as tf
    from tensorflow.core.example import example_pb2

    from batch_explain import Record, read_signature
    from batch_explain._decode import decode

    export = read_signature(model_base_path, signature)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    function = tf.saved_model.load(export.version_path).signatures[signature]
    loaded_at = time.perf_counter()
    count = 0
    batch: list[np.ndarray] = []

    def flush() -> None:
        images = np.stack(batch)
        function(images=tf.constant(images), target_class=tf.constant(np.full(len(batch), -1, np.int32)))
        batch.clear()

    for path in inputs:
        for serialized in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
            example = example_pb2.Example.FromString(serialized)
            data = example.features.feature["image"].bytes_list.value[0]
            batch.append(decode(Record("", str(path), data), export))  # the pipeline's decoder
            count += 1
            if len(batch) == BATCH:
                flush()
    if batch:
        flush()
    seconds = time.perf_counter() - loaded_at
    cpu = time.process_time() - cpu0
    return {
        "images": count,
        "load_seconds": loaded_at - wall0,
        "seconds": seconds,
        "images_per_s": count / seconds,
        "cpu_ms_per_image": 1000 * cpu / count,
    }


def pipeline(model_base_path: str, glob: str, output: Path, workers: int,
             signature: str = "explain") -> dict[str, float]:
    """``saliency-batch`` in a subprocess; wall time, images, CPU of it and its workers."""
    command = [
        sys.executable, "-m", "batch_explain.cli", "--model_base_path", model_base_path,
        "--input", glob, "--output", str(output), "--signature", signature,
        "--heatmaps", "0", "--tf_threads", "1",
        "--max_batch_size", str(BATCH), "--min_batch_size", str(BATCH),
        "--runner", "DirectRunner", "--direct_running_mode", "multi_processing",
        "--direct_num_workers", str(workers),
    ]
    cpu0, wall0 = _children_cpu(), time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - wall0
    summary = json.loads((output / "summary.json").read_text())
    return {
        "images": summary["explained"],
        "seconds": seconds,
        "cpu_seconds": _children_cpu() - cpu0,
    }


def _ig_export(workdir: Path, demo_base: str) -> str:
    """The demo's Keras model exported with integrated gradients too (written once)."""
    base = workdir / "models" / "mnist_ig"
    if any(p.name.isdigit() for p in base.glob("*")):
        return str(base)
    from exporter import export_model

    keras_file = Path(demo_base).parents[1] / "cache" / "mnist_cnn.keras"
    config = workdir / "ig.toml"
    config.write_text('[model]\nname = "mnist"\n[methods]\nenabled = ["vanilla", "integrated_gradients"]\n')
    images, _ = mnist_inputs.digits(8)
    export_model(str(keras_file), base, config=config, samples=images[..., None] / 255.0)
    return str(base)


def measure(model_base_path: str, signature: str, workdir: Path, count: int | None, workers: int) -> dict:
    """The loop and the pipeline on the first ``count`` test digits (all with None)."""
    name = f"{signature}-{count or 'all'}"
    full = mnist_inputs.write_tfrecords(workdir / "input" / name, count, shards=4)
    small_dir = workdir / "input" / f"{name}-small"
    mnist_inputs.write_tfrecords(small_dir, SMALL, shards=2)
    baseline = loop(model_base_path, full, signature)
    tiny = pipeline(model_base_path, str(small_dir / "*.tfrecord"), workdir / "out" / f"{name}-small",
                    workers, signature)
    big = pipeline(model_base_path, str(workdir / "input" / name / "*.tfrecord"), workdir / "out" / name,
                   workers, signature)
    steady = (big["images"] - tiny["images"]) / (big["seconds"] - tiny["seconds"])
    return {
        "signature": signature,
        "loop": baseline,
        "beam_small": tiny,
        "beam": big,
        "beam_wall_images_per_s": big["images"] / big["seconds"],
        "beam_startup_seconds": tiny["seconds"],
        "beam_steady_images_per_s": steady,
        "beam_cpu_ms_per_image": 1000 * big["cpu_seconds"] / big["images"],
        "beam_steady_cpu_ms_per_image": 1000 * (big["cpu_seconds"] - tiny["cpu_seconds"])
        / (big["images"] - tiny["images"]),
        "ratio_steady": steady / baseline["images_per_s"],
        "ratio_wall": big["images"] / big["seconds"] / baseline["images_per_s"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Measure the loop and the pipeline; print and write ``bench.json``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_base_path", required=True, help="the demo export")
    parser.add_argument("--workdir", type=Path, default=Path("build/bench-batch"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ig_count", type=int, default=1000,
                        help="digits for the integrated-gradients case (64 steps each); 0 skips it")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    load_before = os.getloadavg()  # other work on the machine skews both sides; say how much
    cases = [measure(args.model_base_path, "explain", args.workdir, None, args.workers)]
    if args.ig_count:
        ig_base = _ig_export(args.workdir, args.model_base_path)
        cases.append(measure(ig_base, "explain_integrated_gradients", args.workdir, args.ig_count, args.workers))
    result = {"cores": os.cpu_count(), "workers": args.workers, "load_average_before": load_before,
              "load_average_after": os.getloadavg(), "cases": cases}
    (args.workdir / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    for case in cases:
        loop_rate = case["loop"]["images_per_s"]
        print(
            f"{case['signature']} on {case['beam']['images']} digits\n"
            f"  loop: {loop_rate:.0f} images/s ({case['loop']['cpu_ms_per_image']:.2f} CPU ms/image)\n"
            f"  beam, {args.workers} workers: {case['beam_steady_images_per_s']:.0f} images/s steady, "
            f"{case['beam_wall_images_per_s']:.0f} images/s wall incl. {case['beam_startup_seconds']:.1f} s "
            f"start-up ({case['beam_steady_cpu_ms_per_image']:.2f} CPU ms/image after start-up, "
            f"{case['beam_cpu_ms_per_image']:.2f} with it)\n"
            f"  ratio: {case['ratio_steady']:.2f}x steady, {case['ratio_wall']:.2f}x wall"
        )
    print(f"load average: {result['load_average_before'][0]:.1f} before, "
          f"{result['load_average_after'][0]:.1f} after ({result['cores']} cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
