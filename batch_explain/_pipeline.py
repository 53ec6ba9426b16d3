"""The Beam pipeline: read images → decode → RunInference on one signature → Parquet, PNGs, summary.

Everything that runs in parallel is Beam's: ``fileio``/``ReadAllFromTFRecord`` read the input,
a ``Reshuffle`` spreads the records (or the matched files) over the workers, ``RunInference``
batches and loads the model once per worker, its ``with_exception_handling`` dead-letter output
catches failed batches, ``WriteToParquetBatched`` (tables built per batch of rows) and
``WriteToText`` write the shards.

Why the ``Reshuffle``: a runner fuses the steps after a read into one stage and splits that
stage's input among its workers. Read from one TFRecord file (a file cannot be split: one range)
or from a glob of images (one pattern), that input is a single element, and every decode and
signature call of the job ran on one worker while the other idled (measured on the DirectRunner
with 2 worker processes: 40 of 40 calls in one process). After the ``Reshuffle`` the stage's
input is the records themselves, dealt out evenly whatever the number of files.
The same pipeline runs on the DirectRunner (``--direct_running_mode multi_processing``),
Dataflow, Flink and Spark.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.parquetio import WriteToParquetBatched
from apache_beam.io.tfrecordio import ReadAllFromTFRecord
from apache_beam.ml.inference.base import KeyedModelHandler, PredictionResult, RunInference
from apache_beam.options.pipeline_options import PipelineOptions

from serving_client import contract

from ._decode import DecodeError, Record, content_id, explain_input
from ._heatmaps import HeatmapOptions, draw, heatmap_name, selected
from ._model import ExportSignature, SignatureModelHandler, read_signature
from ._schema import OUTPUT_SCHEMA, TableBuilder, row
from ._summary import DeadLetterSummary, RowSummary, render_html
from ._timing import record_outputs_written, record_read

__all__ = ["INPUT_FORMATS", "BatchOptions", "build_pipeline"]

#: ``--input_format``: ``auto`` treats ``*.tfrecord``/``*.tfrecords``/``*.tfr`` as TFRecords.
INPUT_FORMATS = ("auto", "files", "tfrecord")
_TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".tfr")
_DEAD = "dead_letter"


@dataclass(frozen=True)
class BatchOptions:
    """What to explain and where to write it (the ``saliency-batch`` flags other than Beam's).

    Attributes:
        model_base_path: a version directory, or a base directory (its newest version).
        input: a glob of image files, or of TFRecord files of ``tf.train.Example``.
        output: the output directory (local, ``gs://``, anything Beam's FileSystems writes).
        signature: ``explain`` or ``explain_<method>``.
        target_class: the class to explain for every image; ``None``: the label feature if
            ``label_feature`` is set, else each image's predicted class.
        input_format: one of :data:`INPUT_FORMATS`.
        image_feature: the TFRecord feature holding the encoded image.
        label_feature: a TFRecord int64 feature to explain the true class (and report
            accuracy); ``None`` for none.
        id_feature: a TFRecord bytes feature used as the row id when present; records without
            it get ``sha256:<hash of the image bytes>``.
        min_batch_size, max_batch_size: Beam ``BatchElements`` bounds for each signature call;
            the maximum is lowered to the signature's limit in the export report.
        intra_op_threads: TensorFlow threads per worker process (``None``: TF's default).
        num_shards: Parquet shards (0: the runner decides).
        faithfulness_steps: deletion/insertion steps for per-image faithfulness scores (the
            evaluation module's curves; 0: none; float32 exports only).
        blur_sigma: σ in pixels of the blurred image insertion starts from.
        heatmaps: how the PNGs are drawn, and for which share of the images.
    """

    model_base_path: str
    input: str
    output: str
    signature: str = contract.EXPLAIN
    target_class: int | None = None
    input_format: str = "auto"
    image_feature: str = "image"
    label_feature: str | None = None
    id_feature: str = "id"
    min_batch_size: int = 1
    max_batch_size: int = 64
    intra_op_threads: int | None = None
    num_shards: int = 0
    faithfulness_steps: int = 0
    blur_sigma: float = 3.0
    heatmaps: HeatmapOptions = field(default_factory=HeatmapOptions)

    def __post_init__(self) -> None:
        if self.input_format not in INPUT_FORMATS:
            raise ValueError(
                f"input_format must be one of {', '.join(INPUT_FORMATS)}; got {self.input_format!r}."
            )
        if self.min_batch_size < 1 or self.max_batch_size < self.min_batch_size:
            raise ValueError(
                "batch sizes must satisfy 1 <= min_batch_size <= max_batch_size; got "
                f"min_batch_size={self.min_batch_size}, max_batch_size={self.max_batch_size}."
            )
        if self.target_class is not None and self.target_class < 0:
            raise ValueError(f"target_class must be >= 0 (or omitted); got {self.target_class}.")
        if self.intra_op_threads is not None and self.intra_op_threads < 1:
            raise ValueError(f"intra_op_threads must be >= 1; got {self.intra_op_threads}.")
        if self.faithfulness_steps < 0:
            raise ValueError(f"faithfulness_steps must be >= 0; got {self.faithfulness_steps}.")
        if self.blur_sigma <= 0:
            raise ValueError(f"blur_sigma must be > 0; got {self.blur_sigma}.")
        if self.num_shards < 0:
            raise ValueError(f"num_shards must be >= 0; got {self.num_shards}.")

    @property
    def reads_tfrecords(self) -> bool:
        """Whether ``input`` is read as TFRecords."""
        if self.input_format != "auto":
            return self.input_format == "tfrecord"
        return self.input.lower().endswith(_TFRECORD_SUFFIXES)


def _letter(record_id: str, source: str, stage: str, reason: str) -> dict[str, str]:
    return {"id": record_id, "source": source, "stage": stage, "reason": reason}


class _Reading(beam.DoFn):
    """Passes the read stage's elements on; records each bundle's wall time (the read stage is
    part of the job's steady time, see :mod:`batch_explain._timing`)."""

    def __init__(self) -> None:
        self._started = 0.0

    def start_bundle(self) -> None:
        self._started = time.time()

    def process(self, element: Any) -> Iterator[Any]:
        yield element

    def finish_bundle(self) -> None:
        record_read(self._started)


@beam.ptransform_fn
def _Spread(pcoll: beam.PCollection) -> beam.PCollection:  # noqa: N802 (a PTransform's name)
    """The read stage's output, dealt out over the workers (see the module's docstring)."""
    return pcoll | "TimeRead" >> beam.ParDo(_Reading()) | "Spread" >> beam.Reshuffle()


class _ParseExample(beam.DoFn):
    """``(file, serialized tf.train.Example)`` → :class:`Record`, or a dead letter."""

    def __init__(self, options: BatchOptions) -> None:
        self._image = options.image_feature
        self._label = options.label_feature
        self._id = options.id_feature

    def process(self, element: tuple[str, bytes]) -> Iterator[Any]:
        from tensorflow.core.example import example_pb2

        source, serialized = element
        example = example_pb2.Example()
        try:
            example.ParseFromString(serialized)
        except Exception as error:  # protobuf's DecodeError; any failure is this record's
            yield beam.pvalue.TaggedOutput(
                _DEAD, _letter(content_id(serialized), source, "read", f"not a tf.train.Example: {error}")
            )
            return
        features = example.features.feature
        image = features[self._image].bytes_list.value if self._image in features else []
        if len(image) != 1:
            yield beam.pvalue.TaggedOutput(
                _DEAD,
                _letter(content_id(serialized), source, "read",
                        f"feature {self._image!r} must hold one bytes value; found {len(image)} "
                        f"(features: {', '.join(sorted(features))})"),
            )
            return
        ids = features[self._id].bytes_list.value if self._id in features else []
        record_id = ids[0].decode("utf-8", "replace") if len(ids) == 1 else content_id(image[0])
        label = None
        if self._label is not None:
            values = features[self._label].int64_list.value if self._label in features else []
            if len(values) != 1:
                yield beam.pvalue.TaggedOutput(
                    _DEAD,
                    _letter(record_id, source, "read",
                            f"label feature {self._label!r} must hold one int64; found {len(values)}"),
                )
                return
            label = int(values[0])
        yield Record(record_id, source, bytes(image[0]), label)


class _Decode(beam.DoFn):
    """:class:`Record` → ``((id, source, label), ExplainInput)``, or a dead letter."""

    def __init__(self, export: ExportSignature, target_class: int | None) -> None:
        self._export = export
        self._target = target_class

    def process(self, record: Record) -> Iterator[Any]:
        try:
            value = explain_input(record, self._export, self._target)
        except DecodeError as error:
            yield beam.pvalue.TaggedOutput(_DEAD, _letter(record.id, record.source, "decode", str(error)))
            return
        yield (record.id, record.source, record.label), value


class _Rows(beam.DoFn):
    """A keyed :class:`PredictionResult` → a table row; draws its heatmap when selected."""

    def __init__(self, export: ExportSignature, options: BatchOptions) -> None:
        self._export = export
        self._output = options.output.rstrip("/")
        self._heatmaps = options.heatmaps

    def process(self, element: tuple[tuple[str, str, int | None], PredictionResult]) -> Iterator[Any]:
        key, result = element
        outputs = result.inference
        name = None
        if self._heatmaps.fraction > 0 and selected(key[0], self._heatmaps.fraction):
            try:
                png = draw(result.example.pixels, outputs, self._heatmaps)
            except ValueError as error:
                yield beam.pvalue.TaggedOutput(_DEAD, _letter(key[0], key[1], "heatmap", str(error)))
                return
            name = heatmap_name(key[0])
            with FileSystems.create(f"{self._output}/{name}") as stream:
                stream.write(png)
        yield row(key, outputs, version=self._export.version, signature=self._export.signature, heatmap=name)


class _Tables(beam.DoFn):
    """Rows → ``pyarrow.Table`` s of :data:`OUTPUT_SCHEMA` for ``WriteToParquetBatched``: a table
    (a Parquet row group) per ``rows_per_table`` rows, and the rest at the end of each bundle."""

    def __init__(self, rows_per_table: int = 4096) -> None:
        self._rows_per_table = rows_per_table
        self._builder: TableBuilder | None = None

    def start_bundle(self) -> None:
        self._builder = TableBuilder()

    def process(self, table_row: dict[str, Any]) -> Iterator[Any]:
        builder = self._builder
        if builder is None:  # the runner always starts a bundle first; this keeps mypy sure
            builder = self._builder = TableBuilder()
        builder.add(table_row)
        if len(builder) >= self._rows_per_table:
            yield builder.build()

    def finish_bundle(self) -> Iterator[Any]:
        if self._builder is not None and len(self._builder):
            # a batch job's rows are in the global window, as Beam's own WriteToParquet assumes
            yield beam.transforms.window.GlobalWindows.windowed_value_at_end_of_window(self._builder.build())


def _failed_batch(element: tuple[Any, Any]) -> Iterator[dict[str, str]]:
    # Beam's dead letters are (input, (exception type, repr(exception), traceback)).
    batch, error = element
    reason = error[1] if isinstance(error, tuple) else repr(error)
    for key, _ in batch:
        yield _letter(key[0], key[1], "inference", reason)


def _write_summary(_: Any, rows: dict[str, Any], dead: dict[str, Any], _files: list[str],
                   _dead_files: list[str], *, output: str, export: ExportSignature) -> str:
    # ``_files``, ``_dead_files``: the final Parquet and dead-letter files; taking them makes
    # the summary the job's last output, so its presence says the others are complete.
    summary = {
        "model_version_path": export.version_path,
        "model_version": export.version,
        "signature": export.signature,
        **rows,
        **dead,
    }
    for name, text in (("summary.json", json.dumps(summary, indent=2) + "\n"),
                       ("summary.html", render_html(summary))):
        with FileSystems.create(f"{output}/{name}") as stream:
            stream.write(text.encode("utf-8"))
    record_outputs_written()
    return f"{output}/summary.json"


def build_pipeline(
    options: BatchOptions, pipeline_options: PipelineOptions | None = None
) -> beam.Pipeline:
    """Build (not run) the batch-explanation pipeline.

    Outputs under ``options.output``: ``explanations-SSSSS-of-NNNNN.parquet`` (schema
    :data:`batch_explain.OUTPUT_SCHEMA`), ``heatmaps/*.png``, ``dead_letter-*.jsonl`` (one JSON
    object per image that could not be explained: id, source, stage, reason),
    ``summary.json`` and ``summary.html``.

    Args:
        options: what to explain and where to write it.
        pipeline_options: Beam's options (runner, workers, Dataflow project, ...); default:
            the DirectRunner.

    Returns:
        The pipeline; call ``.run().wait_until_finish()``.

    Raises:
        FileNotFoundError, ValueError: the export or its signature does not fit (see
            :func:`batch_explain.read_signature`), checked before anything runs.
    """
    export = read_signature(options.model_base_path, options.signature)
    drawing = options.heatmaps
    if drawing.fraction > 0 and drawing.polarity != "positive" and contract.ATTRIBUTIONS not in export.outputs:
        raise ValueError(
            f"--polarity {drawing.polarity} needs signed attributions; {export.signature!r} returns "
            f"only a [0, 1] saliency map (outputs: {', '.join(export.outputs)}). Use "
            "--polarity positive or an integrated-gradients signature."
        )
    output = options.output.rstrip("/")
    # The graph refuses a batch above the export's limit (its memory budget), and every call is
    # padded to the maximum, so the maximum never exceeds that limit.
    max_batch = min(options.max_batch_size, export.max_batch or options.max_batch_size)
    min_batch = min(options.min_batch_size, max_batch)
    pipeline = beam.Pipeline(options=pipeline_options)

    if options.reads_tfrecords:
        parsed = (
            pipeline
            | "Glob" >> beam.Create([options.input])
            | "ReadTFRecords" >> ReadAllFromTFRecord(with_filename=True)
            | "SpreadRecords" >> _Spread()
            | "Parse" >> beam.ParDo(_ParseExample(options)).with_outputs(_DEAD, main="records")
        )
        records, read_failures = parsed.records, parsed[_DEAD]
    else:
        records = (
            pipeline
            | "Match" >> fileio.MatchFiles(options.input)
            | "SpreadFiles" >> _Spread()
            | "Read" >> fileio.ReadMatches()
            | "ToRecord" >> beam.Map(lambda f: Record(f.metadata.path, f.metadata.path, f.read()))
        )
        read_failures = pipeline | "NoReadFailures" >> beam.Create([])

    decoded = records | "Decode" >> beam.ParDo(
        _Decode(export, options.target_class)
    ).with_outputs(_DEAD, main="inputs")
    handler = KeyedModelHandler(
        SignatureModelHandler(
            export.version_path,
            export.signature,
            min_batch_size=min_batch,
            max_batch_size=max_batch,
            intra_op_threads=options.intra_op_threads,
            faithfulness_steps=options.faithfulness_steps,
            blur_sigma=options.blur_sigma,
            request_defaults=export.request_defaults,
        )
    )
    results, failed = (
        decoded.inputs | "Explain" >> RunInference(handler).with_exception_handling()
    )
    rows = results | "Rows" >> beam.ParDo(_Rows(export, options)).with_outputs(_DEAD, main="rows")
    parquet_files = rows.rows | "Tables" >> beam.ParDo(_Tables()) | "WriteParquet" >> WriteToParquetBatched(
        f"{output}/explanations",
        OUTPUT_SCHEMA,
        file_name_suffix=".parquet",
        num_shards=options.num_shards,
    )
    dead = (
        read_failures,
        decoded[_DEAD],
        failed.failed_inferences | "FailedBatches" >> beam.FlatMap(_failed_batch),
        rows[_DEAD],
    ) | "AllDeadLetters" >> beam.Flatten()
    dead_letter_files = (
        dead
        | "DeadLetterJson" >> beam.Map(lambda letter: json.dumps(letter, sort_keys=True))
        | "WriteDeadLetters" >> beam.io.WriteToText(
            f"{output}/dead_letter", file_name_suffix=".jsonl", num_shards=1
        )
    )
    row_summary = rows.rows | "SummariseRows" >> beam.CombineGlobally(RowSummary())
    dead_summary = dead | "SummariseDeadLetters" >> beam.CombineGlobally(DeadLetterSummary())
    _ = (
        pipeline
        | "One" >> beam.Create([None])
        | "WriteSummary" >> beam.Map(
            _write_summary,
            beam.pvalue.AsSingleton(row_summary),
            beam.pvalue.AsSingleton(dead_summary),
            beam.pvalue.AsList(parquet_files),
            beam.pvalue.AsList(dead_letter_files),
            output=output,
            export=export,
        )
    )
    return pipeline
