"""``saliency-batch``: explain a whole dataset with one signature of an export, on Apache Beam.

Flags not listed here are Beam pipeline options, passed through as they are (``--runner``,
``--direct_num_workers``, ``--direct_running_mode``, ``--project``, ``--region``,
``--temp_location``, ``--requirements_file``, ``--flink_master``, ...). Exit codes: 0 done,
2 bad arguments or an export that does not fit, 1 the pipeline failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from serving_client import contract, render

__all__ = ["main"]


def _percentiles(text: str) -> tuple[float, float]:
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH such as 0,99; got {text!r}") from error
    return low, high


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="saliency-batch",
        description=__doc__.split("\n\n")[0],
        epilog="Any other --flag is a Beam pipeline option.",
        allow_abbrev=False,
    )
    parser.add_argument("--model_base_path", required=True,
                        help="a version directory, or a base directory (its newest version)")
    parser.add_argument("--input", required=True,
                        help="glob of image files, or of TFRecords of tf.train.Example")
    parser.add_argument("--output", required=True, help="output directory (local or gs://)")
    parser.add_argument("--signature", default=contract.EXPLAIN,
                        help="explain (default) or explain_<method>")
    parser.add_argument("--target_class", type=int, default=None,
                        help="class to explain for every image (default: the label feature "
                             "if given, else the predicted class)")
    parser.add_argument("--input_format", choices=("auto", "files", "tfrecord"), default="auto")
    parser.add_argument("--image_feature", default="image", help="TFRecord feature with the image bytes")
    parser.add_argument("--label_feature", default=None, help="TFRecord int64 feature: explain the true class")
    parser.add_argument("--id_feature", default="id", help="TFRecord bytes feature used as the row id")
    parser.add_argument("--min_batch_size", type=int, default=1)
    parser.add_argument("--max_batch_size", type=int, default=64)
    parser.add_argument("--tf_threads", type=int, default=None,
                        help="TensorFlow intra-op threads per worker process")
    parser.add_argument("--num_shards", type=int, default=0, help="Parquet shards (0: runner decides)")
    parser.add_argument("--faithfulness_steps", type=int, default=0,
                        help="per-image deletion/insertion AUC in this many steps (0: none; float32 exports)")
    parser.add_argument("--blur_sigma", type=float, default=3.0,
                        help="sigma of the blurred image insertion starts from")
    drawing = parser.add_argument_group("heatmaps (as saliency-client --overlay)")
    drawing.add_argument("--heatmaps", type=float, default=1.0,
                         help="share of the images that get a PNG (chosen by id hash); 0 for none")
    drawing.add_argument("--colormap", choices=render.COLORMAPS, default=None)
    drawing.add_argument("--alpha", type=float, default=0.5)
    drawing.add_argument("--clip_percentiles", type=_percentiles, default=None, metavar="LOW,HIGH")
    drawing.add_argument("--polarity", choices=render.POLARITIES, default="positive")
    drawing.add_argument("--overlay_type", choices=render.OVERLAY_TYPES, default="original")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags, build and run the pipeline, print the summary line; return an exit code."""
    parser = _parser()
    args, beam_args = parser.parse_known_args(argv)
    try:
        from apache_beam.options.pipeline_options import PipelineOptions

        from . import BatchOptions, HeatmapOptions, build_pipeline
        from ._timing import batch_timing
    except ImportError as error:
        print(f"saliency-batch needs Apache Beam: install the 'batch' extra ({error}).", file=sys.stderr)
        return 2
    try:
        options = BatchOptions(
            model_base_path=args.model_base_path,
            input=args.input,
            output=args.output,
            signature=args.signature,
            target_class=args.target_class,
            input_format=args.input_format,
            image_feature=args.image_feature,
            label_feature=args.label_feature,
            id_feature=args.id_feature,
            min_batch_size=args.min_batch_size,
            max_batch_size=args.max_batch_size,
            intra_op_threads=args.tf_threads,
            num_shards=args.num_shards,
            faithfulness_steps=args.faithfulness_steps,
            blur_sigma=args.blur_sigma,
            heatmaps=HeatmapOptions(
                fraction=args.heatmaps,
                colormap=args.colormap,
                alpha=args.alpha,
                clip_percentiles=args.clip_percentiles,
                polarity=args.polarity,
                overlay_type=args.overlay_type,
            ),
        )
        pipeline = build_pipeline(options, PipelineOptions(beam_args))
    except (FileNotFoundError, ValueError) as error:
        print(f"saliency-batch: {error}", file=sys.stderr)
        return 2
    started = time.time()  # the workers' batch timestamps use the same clock
    result = pipeline.run()
    state = result.wait_until_finish()
    finished = time.time()
    seconds = finished - started
    if str(state) not in ("DONE", "PipelineState.DONE"):
        print(f"saliency-batch: the pipeline ended in state {state}.", file=sys.stderr)
        return 1
    summary_path = f"{options.output.rstrip('/')}/summary.json"
    try:
        from apache_beam.io.filesystems import FileSystems

        with FileSystems.open(summary_path) as stream:
            summary = json.loads(stream.read())
    except (OSError, ValueError):
        print(f"done in {seconds:.1f} s; summary={summary_path}")
        return 0
    explained, failed = summary["explained"], summary["failed"]
    # The job's time in three parts (batch_explain._timing): start-up (processes starting,
    # importing TensorFlow, loading the model), the steady part (the read stage, and the first
    # signature call to the summary written) and shut-down (the worker processes exiting).
    steady = ""
    timing = batch_timing(result)
    if timing is not None and timing.steady_seconds > 0:
        written = timing.outputs_written if timing.outputs_written is not None else finished
        steady = (
            f"startup_seconds={timing.first_start - timing.read_seconds - started:.1f}\t"
            f"steady_images_per_s={explained / timing.steady_seconds:.1f}\t"
            f"shutdown_seconds={max(finished - written, 0.0):.1f}\t"
            f"worker_cpu_ms_per_image={1000 * timing.worker_cpu_seconds / max(explained, 1):.3f}\t"
            f"batches_per_worker={','.join(map(str, timing.batches_per_worker))}\t"
        )
    print(
        f"explained={explained}\tfailed={failed}\tseconds={seconds:.1f}\t"
        f"images_per_s={explained / seconds:.1f}\t{steady}summary={summary_path}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
