"""The batch pipeline on real MNIST digits, checked row by row against the signature in-process.

Needs Apache Beam (``make test-batch``, the ``.venv-batch`` venv); skipped where it is not
installed, as in the main venv. Uses the demo export (``make demo`` writes it; ``make test-batch``
builds it first and sets ``SALIENCY_BATCH_TESTS=required``, so a missing export fails there
instead of skipping every test).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

beam = pytest.importorskip("apache_beam", reason="batch tests need the 'batch' extra (make test-batch)")
pq = pytest.importorskip("pyarrow.parquet")
tf = pytest.importorskip("tensorflow")

from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402
from PIL import Image  # noqa: E402

from batch_explain import OUTPUT_SCHEMA, BatchOptions, HeatmapOptions, build_pipeline  # noqa: E402
from batch_explain.cli import main  # noqa: E402
from tests.batch import mnist_inputs  # noqa: E402

DEMO_BASE = Path(__file__).resolve().parents[2] / "build" / "demo" / "models" / "mnist"
DIGITS = 36
TOLERANCE = 1e-5
REQUIRED = os.environ.get("SALIENCY_BATCH_TESTS") == "required"

if REQUIRED and not (DEMO_BASE.parents[1] / "cache" / "mnist_cnn.keras").is_file():
    raise RuntimeError(
        f"SALIENCY_BATCH_TESTS=required but the demo's model and export are missing under "
        f"{DEMO_BASE.parents[1]}; expected `make demo` to have written them."
    )

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not DEMO_BASE.is_dir(), reason=f"needs the demo export at {DEMO_BASE} (run make demo)"),
]


def _version_dir() -> Path:
    return max((p for p in DEMO_BASE.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


@pytest.fixture(scope="module")
def signature():
    loaded = tf.saved_model.load(str(_version_dir()))
    function = loaded.signatures["explain"]
    function._keep = loaded
    return function


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """36 real digits as PNGs, one corrupt file and one 30x30 digit."""
    directory = tmp_path_factory.mktemp("digits")
    mnist_inputs.write_pngs(directory, DIGITS)
    (directory / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 8)
    images, _ = mnist_inputs.digits(1)
    big = Image.fromarray(images[0], mode="L").resize((30, 30))
    big.save(directory / "wrong_size.png")
    return directory


def _run(options: BatchOptions, *beam_args: str) -> None:
    result = build_pipeline(options, PipelineOptions(list(beam_args))).run()
    result.wait_until_finish()


def _table(output: Path):
    files = sorted(output.glob("explanations-*.parquet"))
    assert files, f"no Parquet output in {output}"
    return pq.ParquetDataset([str(f) for f in files]).read().sort_by("id")


def _dead_letters(output: Path) -> list[dict]:
    lines = []
    for path in sorted(output.glob("dead_letter-*.jsonl")):
        lines += [json.loads(line) for line in path.read_text().splitlines() if line]
    return sorted(lines, key=lambda letter: letter["id"])


def _reference(signature, pngs: list[bytes], targets: list[int]) -> dict[str, np.ndarray]:
    """The signature on all images in one batch, decoded independently of the pipeline."""
    pixels = np.stack([np.asarray(Image.open(io.BytesIO(png)), dtype=np.float32) for png in pngs])
    outputs = signature(
        images=tf.constant(pixels[..., np.newaxis] / 255.0),
        target_class=tf.constant(targets, tf.int32),
    )
    return {name: value.numpy() for name, value in outputs.items()}


def _check_rows(table, signature, pngs: dict[str, bytes], target_of) -> None:
    """Every row equals the in-process signature: probabilities and saliency to 1e-5; logits
    to 1e-5 of their magnitude (>= 1), since float32 rounding of the logits depends on the
    batch size (measured: batch 1 vs 64 differ by 1.5e-5 at |logit| = 19; saliency identical)."""
    rows = table.to_pylist()
    assert sorted(r["id"] for r in rows) == sorted(pngs)
    expected = _reference(signature, [pngs[r["id"]] for r in rows], [target_of(r) for r in rows])
    saliency = np.stack([
        np.asarray(r["saliency"], np.float32).reshape(r["saliency_height"], r["saliency_width"]) for r in rows
    ])
    logits = np.asarray([r["logits"] for r in rows], np.float32)
    differences = {
        "probabilities": np.abs(np.asarray([r["probabilities"] for r in rows]) - expected["probabilities"]).max(),
        "saliency": np.abs(saliency - expected["saliency"]).max(),
        "logits (relative)": (np.abs(logits - expected["logits"]) / np.maximum(1.0, np.abs(expected["logits"]))).max(),
    }
    assert max(differences.values()) <= TOLERANCE, differences
    assert [r["predicted_class"] for r in rows] == expected["predicted_class"].tolist()
    assert [r["target_class"] for r in rows] == expected["target_class"].tolist()
    probability = [r["probability"] for r in rows]
    np.testing.assert_allclose(probability, expected["probabilities"].max(axis=1), atol=TOLERANCE)
    assert all(r["approximation_error"] is None for r in rows)  # vanilla gradients have none


@pytest.fixture(scope="module")
def files_run(inputs, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("out")
    _run(BatchOptions(model_base_path=str(DEMO_BASE), input=str(inputs / "*.png"), output=str(output),
                      max_batch_size=16))
    return output


def test_every_row_equals_the_signature_in_process(files_run, inputs, signature):
    pngs = {str(p): p.read_bytes() for p in inputs.glob("digit_*.png")}
    _check_rows(_table(files_run), signature, pngs, target_of=lambda r: -1)


def test_corrupt_and_wrong_size_images_go_to_the_dead_letter_output(files_run, inputs):
    letters = _dead_letters(files_run)
    assert [Path(letter["id"]).name for letter in letters] == ["corrupt.png", "wrong_size.png"]
    assert all(letter["stage"] == "decode" for letter in letters)
    assert "cannot decode" in letters[0]["reason"]
    assert "30x30" in letters[1]["reason"] and "28x28" in letters[1]["reason"]
    summary = json.loads((files_run / "summary.json").read_text())
    assert summary["explained"] == DIGITS and summary["failed"] == 2
    assert summary["failed_by_stage"] == {"decode": 2}
    assert sum(summary["predicted_class_histogram"].values()) == DIGITS
    assert (files_run / "summary.html").read_text().startswith("<!doctype html>")


def test_parquet_schema_is_pinned(files_run):
    pinned = [
        ("id", "string", False), ("source", "string", False), ("model_version", "int64", False),
        ("signature", "string", False), ("predicted_class", "int32", False),
        ("probability", "float", False), ("target_class", "int32", False),
        ("target_probability", "float", False), ("label", "int32", True),
        ("approximation_error", "float", True), ("deletion_auc", "float", True),
        ("insertion_auc", "float", True), ("logits", "list<item: float>", False),
        ("probabilities", "list<item: float>", False), ("saliency", "list<item: float>", False),
        ("saliency_height", "int32", False), ("saliency_width", "int32", False),
        ("heatmap", "string", True),
    ]
    assert [(f.name, str(f.type), f.nullable) for f in OUTPUT_SCHEMA] == pinned
    written = pq.read_schema(next(files_run.glob("explanations-*.parquet")))
    assert [(f.name, str(f.type), f.nullable) for f in written] == pinned


def test_heatmaps_are_the_client_renderers_overlay(files_run, signature):
    from serving_client import render

    row = _table(files_run).slice(0, 1).to_pylist()[0]
    png = Path(row["id"]).read_bytes()
    expected = render.overlay(
        np.asarray(Image.open(io.BytesIO(png)), np.float32)[..., np.newaxis] / 255.0,
        _reference(signature, [png], [-1])["saliency"][0],
    )
    drawn = np.asarray(Image.open(files_run / row["heatmap"]))
    assert drawn.shape == (28, 28, 3)
    # the maps agree to 1e-5, so the 8-bit colors may differ by one step at most
    assert int(np.max(np.abs(drawn.astype(int) - expected.astype(int)))) <= 1


def test_a_rerun_writes_the_same_outputs(files_run, inputs):
    before = {p.relative_to(files_run): p.read_bytes() for p in files_run.rglob("*") if p.is_file()}
    table = _table(files_run)
    _run(BatchOptions(model_base_path=str(DEMO_BASE), input=str(inputs / "*.png"), output=str(files_run),
                      max_batch_size=16))
    after = {p.relative_to(files_run): p.read_bytes() for p in files_run.rglob("*") if p.is_file()}
    assert sorted(after) == sorted(before)
    assert _table(files_run).equals(table)  # rows sorted by their deterministic ids
    heatmaps = [name for name in before if name.parts[0] == "heatmaps"]
    assert len(heatmaps) == DIGITS
    assert all(after[name] == before[name] for name in heatmaps)
    assert after[Path("summary.json")] == before[Path("summary.json")]
    assert _dead_letters(files_run) == sorted(
        (json.loads(line) for line in before[Path("dead_letter-00000-of-00001.jsonl")].decode().splitlines()),
        key=lambda letter: letter["id"],
    )


def test_tfrecords_with_labels_on_two_worker_processes(tmp_path, signature):
    """The demo's path: TFRecord shards, the label as target, multi-processing DirectRunner."""
    mnist_inputs.write_tfrecords(tmp_path / "in", DIGITS, shards=2)
    output = tmp_path / "out"
    _run(
        BatchOptions(model_base_path=str(DEMO_BASE), input=str(tmp_path / "in" / "*.tfrecord"),
                     output=str(output), label_feature="label", intra_op_threads=1,
                     heatmaps=HeatmapOptions(fraction=0.0)),
        "--direct_running_mode=multi_processing", "--direct_num_workers=2",
    )
    images, labels = mnist_inputs.digits(DIGITS)
    pngs = {f"mnist_test/{i:05d}": mnist_inputs.png_bytes(images[i]) for i in range(DIGITS)}
    label_of = {f"mnist_test/{i:05d}": int(labels[i]) for i in range(DIGITS)}
    table = _table(output)
    _check_rows(table, signature, pngs, target_of=lambda r: label_of[r["id"]])
    assert table.column("label").to_pylist() == [label_of[i] for i in table.column("id").to_pylist()]
    assert table.column("heatmap").null_count == DIGITS
    summary = json.loads((output / "summary.json").read_text())
    assert summary["labelled"] == DIGITS and summary["failed"] == 0


@pytest.mark.parametrize("kind", ["one TFRecord file", "a glob of image files"])
def test_one_file_or_an_image_glob_is_spread_over_both_worker_processes(inputs, tmp_path, signature, kind):
    """A runner splits a fused stage's input among its workers; read from one TFRecord file (one
    range) or from one glob, that input was a single element and one worker ran every signature
    call. The records are reshuffled after the read, so both processes run calls."""
    if kind == "one TFRecord file":
        mnist_inputs.write_tfrecords(tmp_path / "in", DIGITS, shards=1)
        pattern = str(tmp_path / "in" / "*.tfrecord")
        images, _ = mnist_inputs.digits(DIGITS)
        pngs = {f"mnist_test/{i:05d}": mnist_inputs.png_bytes(images[i]) for i in range(DIGITS)}
    else:
        pattern = str(inputs / "digit_*.png")
        pngs = {str(p): p.read_bytes() for p in inputs.glob("digit_*.png")}
    output = tmp_path / "out"
    result = build_pipeline(
        BatchOptions(model_base_path=str(DEMO_BASE), input=pattern, output=str(output), min_batch_size=4,
                     max_batch_size=4, intra_op_threads=1, heatmaps=HeatmapOptions(fraction=0.0)),
        PipelineOptions(["--direct_running_mode=multi_processing", "--direct_num_workers=2"]),
    ).run()
    result.wait_until_finish()
    _check_rows(_table(output), signature, pngs, target_of=lambda r: r["predicted_class"])
    from batch_explain._timing import batch_timing

    timing = batch_timing(result)
    assert timing is not None
    # 36 records dealt out evenly: 18 per worker process, 5 calls of at most 4 in each
    assert timing.batches_per_worker == (5, 5), timing.batches_per_worker


def test_a_fixed_target_class_is_explained_for_every_image(inputs, tmp_path, signature):
    output = tmp_path / "out"
    _run(BatchOptions(model_base_path=str(_version_dir()), input=str(inputs / "digit_0000*.png"),
                      output=str(output), target_class=3, heatmaps=HeatmapOptions(fraction=0.0)))
    pngs = {str(p): p.read_bytes() for p in inputs.glob("digit_0000*.png")}
    table = _table(output)
    assert set(table.column("target_class").to_pylist()) == {3}
    _check_rows(table, signature, pngs, target_of=lambda r: 3)


def test_cli_runs_the_pipeline_and_passes_beam_options_through(inputs, tmp_path, capsys):
    code = main([
        "--model_base_path", str(DEMO_BASE), "--input", str(inputs / "digit_0001*.png"),
        "--output", str(tmp_path / "out"), "--heatmaps", "0", "--runner", "DirectRunner",
    ])
    assert code == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("explained=10\tfailed=0\t") and "images_per_s=" in line
    fields = dict(part.split("=", 1) for part in line.split("\t"))
    # the steady rate leaves the start-up out, so it is at least the whole job's rate
    assert float(fields["startup_seconds"]) >= 0 and float(fields["shutdown_seconds"]) >= 0
    assert float(fields["steady_images_per_s"]) >= float(fields["images_per_s"]) > 0
    assert float(fields["worker_cpu_ms_per_image"]) > 0
    assert fields["batches_per_worker"].isdigit()  # the DirectRunner's default: one process


def test_batch_timing_is_on_the_workers_clocks_within_the_job(inputs, tmp_path):
    """The read stage, the first call's start, the last one's end and the summary written lie
    inside the job as this process's clock saw it, in that order; one timestamp pair per
    signature call (10 digits in calls of 4: 3 calls, all in this one process)."""
    import time

    from batch_explain._timing import batch_timing

    options = BatchOptions(model_base_path=str(DEMO_BASE), input=str(inputs / "digit_0000*.png"),
                           output=str(tmp_path / "out"), min_batch_size=4, max_batch_size=4,
                           heatmaps=HeatmapOptions(fraction=0.0))
    pipeline = build_pipeline(options, PipelineOptions([]))
    before = time.time()
    result = pipeline.run()
    result.wait_until_finish()
    after = time.time()
    timing = batch_timing(result)
    assert timing is not None
    assert timing.outputs_written is not None
    assert before - 0.001 <= timing.first_start <= timing.last_end <= timing.outputs_written <= after + 0.001
    assert 0 <= timing.read_seconds <= timing.first_start - before + 0.001
    assert timing.steady_seconds == pytest.approx(
        timing.read_seconds + timing.outputs_written - timing.first_start)
    assert timing.batches == 3 and timing.batches_per_worker == (3,)
    assert timing.worker_cpu_seconds > 0


def test_table_builder_equals_pyarrows_own_conversion_of_the_rows():
    """Rows with float32 arrays, built column by column, equal pyarrow's conversion of the same
    rows as Python lists (the way WriteToParquet took them)."""
    import pyarrow as pa

    from batch_explain._schema import TableBuilder, row

    rng = np.random.default_rng(0)
    rows = []
    for index in range(5):
        outputs = {
            "probabilities": rng.random(10, dtype=np.float32), "logits": rng.normal(size=10).astype(np.float32),
            "predicted_class": np.int64(index), "target_class": np.int32(9 - index),
            "saliency": rng.random((28, 28), dtype=np.float32),
            **({"approximation_error": np.float32(0.25)} if index % 2 else {}),
        }
        rows.append(row((f"id{index}", "src", index if index % 3 else None), outputs, version=7,
                        signature="explain", heatmap=None if index % 2 else f"h{index}.png"))
    builder = TableBuilder()
    for table_row in rows:
        builder.add(table_row)
    assert len(builder) == 5
    built = builder.build()
    as_lists = [{k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in r.items()} for r in rows]
    assert built.equals(pa.Table.from_pylist(as_lists, schema=OUTPUT_SCHEMA))
    assert built.column("saliency")[3].as_py() == rows[3]["saliency"].tolist()
    assert len(builder) == 0 and builder.build().num_rows == 0


def test_cli_names_the_signatures_an_export_has(inputs, tmp_path, capsys):
    code = main([
        "--model_base_path", str(DEMO_BASE), "--input", str(inputs / "*.png"),
        "--output", str(tmp_path / "out"), "--signature", "explain_smoothgrad",
    ])
    assert code == 2
    error = capsys.readouterr().err
    assert "no signature 'explain_smoothgrad'" in error and "explain" in error


def test_a_missing_export_is_refused_before_anything_runs(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_pipeline(BatchOptions(model_base_path=str(tmp_path / "nope"), input="x", output="y"))
    with pytest.raises(ValueError, match="not an explanation signature"):
        build_pipeline(BatchOptions(model_base_path=str(DEMO_BASE), input="x", output="y",
                                    signature="serving_default"))


def test_options_are_validated_with_what_was_received():
    with pytest.raises(ValueError, match="min_batch_size=8, max_batch_size=4"):
        BatchOptions(model_base_path="m", input="i", output="o", min_batch_size=8, max_batch_size=4)
    with pytest.raises(ValueError, match="got 1.5"):
        HeatmapOptions(fraction=1.5)


def test_the_python_example_of_docs_batch_md_runs(tmp_path):
    """docs/batch.md's Python block, as it stands, on 36 digits instead of 10,000."""
    import re
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    page = (root / "docs" / "batch.md").read_text(encoding="utf-8")
    (block,) = re.findall(r"```python\n(.*?)```", page, flags=re.S)
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "demo").symlink_to(root / "build" / "demo")
    mnist_inputs.write_tfrecords(tmp_path / "build" / "batch-demo" / "input", DIGITS, shards=2)
    subprocess.run([sys.executable, "-c", block], cwd=tmp_path, check=True, timeout=300,
                   capture_output=True)
    summary = json.loads((tmp_path / "build" / "batch-demo" / "python" / "summary.json").read_text())
    assert summary["explained"] == DIGITS and summary["labelled"] == DIGITS


def test_batches_never_exceed_the_exports_limit(inputs, tmp_path):
    """Calls are padded to max_batch_size, so it is lowered to the report's limit (1024 here):
    a batch of 2000 would be refused by the graph and every image would be a dead letter."""
    from batch_explain import read_signature

    report = json.loads((_version_dir() / "assets.extra" / "export_report.json").read_text())
    limit = report["limits"]["signatures"]["explain"]["max_batch"]
    assert read_signature(str(DEMO_BASE), "explain").max_batch == limit < 2000
    output = tmp_path / "out"
    _run(BatchOptions(model_base_path=str(DEMO_BASE), input=str(inputs / "digit_0000*.png"),
                      output=str(output), max_batch_size=2000, heatmaps=HeatmapOptions(fraction=0.0)))
    summary = json.loads((output / "summary.json").read_text())
    assert (summary["explained"], summary["failed"]) == (10, 0)


def _export_demo_model(tmp_path_factory, name: str, toml: str) -> Path:
    """The demo's Keras model exported with another config; returns the base directory."""
    from exporter import export_model

    keras_file = DEMO_BASE.parents[1] / "cache" / "mnist_cnn.keras"
    if not keras_file.is_file():
        pytest.skip(f"needs the demo's trained model at {keras_file} (run make demo)")
    directory = tmp_path_factory.mktemp(name)
    config = directory / "export.toml"
    config.write_text(toml)
    images, _ = mnist_inputs.digits(4)
    return export_model(str(keras_file), directory / "models", config=config,
                        samples=images[..., None] / 255.0).parent


@pytest.fixture(scope="module")
def image_bytes_export(tmp_path_factory) -> Path:
    """Encoded-image input: the graph decodes and resizes."""
    return _export_demo_model(tmp_path_factory, "bytes", '[model]\nname = "mnist"\n[input]\nformat = "image_bytes"\n')


@pytest.fixture(scope="module")
def ig_export(tmp_path_factory) -> Path:
    """Integrated gradients too (8 steps, to keep the test short)."""
    return _export_demo_model(
        tmp_path_factory, "ig",
        '[model]\nname = "mnist"\n[methods]\nenabled = ["vanilla", "integrated_gradients"]\n'
        '[methods.integrated_gradients]\nsteps = 8\n',
    )


def _request_defaults(version: Path, name: str) -> dict:
    """The SignatureDef's defaults of the inputs other than images and target_class (the
    per-request parameters), read from saved_model.pb here, apart from the pipeline."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((version / "saved_model.pb").read_bytes())
    definition = saved.meta_graphs[0].signature_def[name]
    return {key: tf.constant(tf.make_ndarray(definition.defaults[key])) for key in definition.inputs
            if key not in ("images", "target_class")}


def test_integrated_gradients_rows_carry_the_approximation_error_and_signed_heatmaps(ig_export, inputs, tmp_path):
    output = tmp_path / "out"
    _run(BatchOptions(model_base_path=str(ig_export), input=str(inputs / "digit_0000*.png"), output=str(output),
                      signature="explain_integrated_gradients",
                      heatmaps=HeatmapOptions(polarity="both")))
    rows = _table(output).to_pylist()
    assert len(rows) == 10 and {r["signature"] for r in rows} == {"explain_integrated_gradients"}
    version = next(p for p in ig_export.iterdir() if p.name.isdigit())
    loaded = tf.saved_model.load(str(version))
    pngs = [Path(r["id"]).read_bytes() for r in rows]
    pixels = np.stack([np.asarray(Image.open(io.BytesIO(p)), np.float32) for p in pngs])[..., None] / 255.0
    outputs = loaded.signatures["explain_integrated_gradients"](
        images=tf.constant(pixels), target_class=tf.constant([-1] * len(rows), tf.int32),
        **_request_defaults(version, "explain_integrated_gradients"),
    )
    np.testing.assert_allclose([r["approximation_error"] for r in rows],
                               outputs["approximation_error"].numpy(), atol=TOLERANCE)
    from serving_client import render

    first = rows[0]
    expected = render.overlay(pixels[0], render.signed_map(outputs["attributions"].numpy()[0]), polarity="both")
    drawn = np.asarray(Image.open(output / first["heatmap"]))
    assert int(np.max(np.abs(drawn.astype(int) - expected.astype(int)))) <= 1


def test_a_signed_polarity_without_attributions_is_refused_before_anything_runs():
    with pytest.raises(ValueError, match=r"--polarity negative needs signed attributions; 'explain'"):
        build_pipeline(BatchOptions(model_base_path=str(DEMO_BASE), input="x", output="y",
                                    heatmaps=HeatmapOptions(polarity="negative")))


def test_an_image_bytes_export_resizes_in_its_graph_and_rows_still_equal_it(image_bytes_export, inputs, tmp_path):
    output = tmp_path / "out"
    _run(BatchOptions(model_base_path=str(image_bytes_export), input=str(inputs / "*.png"),
                      output=str(output), max_batch_size=16))
    letters = _dead_letters(output)
    assert [Path(letter["id"]).name for letter in letters] == ["corrupt.png"]  # 30x30 is resized
    rows = _table(output).to_pylist()
    assert len(rows) == DIGITS + 1
    loaded = tf.saved_model.load(str(next(p for p in image_bytes_export.iterdir() if p.name.isdigit())))
    outputs = loaded.signatures["explain"](
        images=tf.constant([Path(r["id"]).read_bytes() for r in rows]),
        target_class=tf.constant([-1] * len(rows), tf.int32),
    )
    saliency = np.stack([np.reshape(r["saliency"], (r["saliency_height"], r["saliency_width"])) for r in rows])
    assert np.abs(saliency - outputs["saliency"].numpy()).max() <= TOLERANCE
    np.testing.assert_allclose([r["probabilities"] for r in rows], outputs["probabilities"].numpy(), atol=TOLERANCE)
    assert [r["predicted_class"] for r in rows] == outputs["predicted_class"].numpy().tolist()


def test_faithfulness_scores_equal_the_evaluation_modules_curves_in_process(inputs, tmp_path, signature):
    from exporter.evaluation import auc, perturbation_curves, saliency_order

    output = tmp_path / "out"
    _run(BatchOptions(model_base_path=str(DEMO_BASE), input=str(inputs / "digit_0000*.png"),
                      output=str(output), faithfulness_steps=10, heatmaps=HeatmapOptions(fraction=0.0)))
    rows = _table(output).to_pylist()
    pngs = [Path(r["id"]).read_bytes() for r in rows]
    expected = _reference(signature, pngs, [-1] * len(rows))
    images = np.stack([np.asarray(Image.open(io.BytesIO(p)), np.float32) for p in pngs])[..., None] / 255.0
    predict_fn = signature._keep.signatures["serving_default"]

    def predict(x: np.ndarray) -> np.ndarray:
        return predict_fn(images=tf.constant(x))["probabilities"].numpy()

    deletion, insertion = perturbation_curves(
        predict, images, expected["target_class"], saliency_order(expected["saliency"]), steps=10, blur_sigma=3.0
    )
    np.testing.assert_allclose([r["deletion_auc"] for r in rows], auc(deletion), atol=TOLERANCE)
    np.testing.assert_allclose([r["insertion_auc"] for r in rows], auc(insertion), atol=TOLERANCE)
    summary = json.loads((output / "summary.json").read_text())
    assert summary["mean_deletion_auc"] == pytest.approx(float(np.mean(auc(deletion))), abs=TOLERANCE)
