"""The C++-loader runner (`exporter._cpp_loader`) against the TF1 Python loader, and its failures.

The TF1 session (`exporter.Tf1SavedModel`, TensorFlow's Python loader in this process)
is the independent reference: the runner loads the same files through the C API's
TF_LoadSessionFromSavedModel in a child process that never imports TensorFlow's Python.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from exporter import ExportConfig, SaliencyExporter, Tf1SavedModel
from exporter._compat import MatrixExport, run_matrix
from exporter._config import InputConfig, MethodsConfig
from exporter._cpp_loader import (
    FRAMEWORK_NAME,
    CppLoaderError,
    CppRuntime,
    installed_library,
    load_saved_model,
)
from exporter._errors import VerificationError
from exporter._inputs import encode_samples
from exporter._runtimes import RuntimeFetchError, installed_version, runtime_library
from exporter._verify_cpp import CppLoaderCheck
from exporter.methods import IntegratedGradientsParams, SmoothGradParams

pytestmark = pytest.mark.integration

ALL_METHODS = ("vanilla", "smoothgrad", "integrated_gradients", "gradient_x_input", "gradcam")
SHAPE = (8, 8, 3)
#: The oldest runtime of the matrix (first TF Serving release honouring SignatureDef.defaults).
OLDEST = "2.14.1"
COMPAT_CACHE = Path(__file__).resolve().parents[2] / "build" / "compat" / "runtimes"


def _cnn(seed: int = 21) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input(SHAPE),
            keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax", name="head"),
        ]
    )


def _samples(n: int = 3) -> np.ndarray:
    return np.random.default_rng(5).random((n, *SHAPE), dtype=np.float32)


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, tuple[Path, np.ndarray, dict]]:
    """format → (version dir, `images` feed, report): the same CNN with every method."""
    out = {}
    for input_format in ("float32", "uint8", "image_bytes"):
        config = ExportConfig(
            name="cpp",
            # Few noise samples and IG steps: the same graph ops, a cheaper export-time check.
            methods=MethodsConfig(
                enabled=ALL_METHODS, params=[SmoothGradParams(samples=4), IntegratedGradientsParams(steps=8)]
            ),
            input=InputConfig(format=input_format),
        )
        result = SaliencyExporter(_cnn(), config).write(tmp_path_factory.mktemp(input_format), samples=_samples())
        images, _ = encode_samples(_samples(), config.input)
        out[input_format] = (result.path, images, result.report)
    return out


@pytest.mark.parametrize("input_format", ["float32", "uint8", "image_bytes"])
def test_every_signature_matches_the_tf1_loader(exports, input_format):
    path, images, _ = exports[input_format]
    other = np.array([2, 0, 1], np.int32)
    with load_saved_model(path) as model, Tf1SavedModel(path) as saved:
        assert model.runtime.version == installed_version()
        names = sorted(n for n in saved.signature_defs if not n.startswith("__"))
        assert sorted(n for n in model.signatures if not n.startswith("__")) == names
        assert len(names) == 1 + len(ALL_METHODS)
        for name in names:
            sig, info = saved.signature_defs[name], model.signatures[name]
            # The contract clients depend on: aliases, tensor names and dtypes.
            assert {a: (t.name, t.dtype) for a, t in sig.inputs.items()} == {
                a: (t.name, t.dtype) for a, t in info.inputs.items()
            }
            assert {a: (t.name, t.dtype) for a, t in sig.outputs.items()} == {
                a: (t.name, t.dtype) for a, t in info.outputs.items()
            }
            feeds = [{"images": images}]
            if "target_class" in sig.inputs:
                feeds.append({"images": images, "target_class": other})
            for feed in feeds:
                want, got = saved.run(name, feed), model.run(name, feed)
                assert sorted(got) == sorted(want)
                for alias in want:
                    assert got[alias].dtype == want[alias].dtype, (name, alias)
                    np.testing.assert_array_equal(got[alias], want[alias], err_msg=f"{name}/{alias}")
                if "target_class" in feed:
                    np.testing.assert_array_equal(got["target_class"], other)


def test_omitted_target_class_uses_the_signature_default(exports):
    path, images, _ = exports["float32"]
    with load_saved_model(path) as model:
        assert model.signatures["explain"].defaults["target_class"].tolist() == [-1]
        assert "target_class" not in model.signatures["serving_default"].defaults
        omitted = model.run("explain", {"images": images})
        explicit = model.run("explain", {"images": images, "target_class": np.full(3, -1, np.int32)})
        np.testing.assert_array_equal(omitted["target_class"], omitted["predicted_class"])
        np.testing.assert_array_equal(omitted["saliency"], explicit["saliency"])
        # The predicted class is the argmax of the probabilities (computed here, not by TF).
        np.testing.assert_array_equal(omitted["predicted_class"], np.argmax(omitted["probabilities"], -1))


def test_every_export_report_has_cpp_loader_figures(exports):
    for path, _, report in exports.values():
        figures = report["verification"]["cpp_loader"]
        assert figures["tf_version"] == installed_version()
        assert figures["max_abs_diff"] == 0.0
        assert sorted(figures["signatures"]) == sorted(
            ["serving_default", "explain", "explain_smoothgrad", "explain_integrated_gradients",
             "explain_gradient_x_input", "explain_gradcam"]
        )
        for name, entry in figures["signatures"].items():
            expected = {"default_inputs_max_abs_diff"} | ({"all_inputs_max_abs_diff"} if name != "serving_default" else set())
            assert set(entry) == expected, name
        assert (path / "assets.extra" / "export_report.json").is_file()


def test_a_run_error_comes_back_with_tf_status(exports):
    path, _, _ = exports["image_bytes"]
    bad = np.array([b"not an image", b"\x89PNG-truncated"], dtype=object)
    with Tf1SavedModel(path) as saved, pytest.raises(tf.errors.InvalidArgumentError) as tf1_error:
        saved.run("explain", {"images": bad})
    with load_saved_model(path) as model:
        with pytest.raises(CppLoaderError) as error:
            model.run("explain", {"images": bad})
        assert error.value.code == 3 and error.value.code_name == "INVALID_ARGUMENT"
        assert "images could not be decoded" in error.value.tf_message
        assert "images could not be decoded" in tf1_error.value.message
        # The session survives a failed run.
        _, images, _ = exports["image_bytes"]
        assert model.run("serving_default", {"images": images})["logits"].shape == (3, 3)


def test_bad_requests_are_refused_before_tf(exports):
    path, images, _ = exports["float32"]
    with load_saved_model(path) as model:
        with pytest.raises(CppLoaderError, match=r"Unknown signature 'nope'.*'explain'"):
            model.run("nope", {"images": images})
        with pytest.raises(CppLoaderError, match=r"needs inputs \['images'\]"):
            model.run("explain", {"target_class": np.zeros(3, np.int32)})
        with pytest.raises(CppLoaderError, match=r"no inputs \['pixels'\]"):
            model.run("explain", {"pixels": images})
        seconds = model.benchmark("serving_default", {"images": images}, repeats=4, warmup=1)
        assert seconds.shape == (4,) and np.all(seconds > 0)


def _copy(path: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy" / "1"
    shutil.copytree(path, target)
    return target


def test_corrupted_saved_model_pb_gives_tfs_error(exports, tmp_path):
    path = _copy(exports["float32"][0], tmp_path)
    data = (path / "saved_model.pb").read_bytes()
    (path / "saved_model.pb").write_bytes(data[: len(data) // 2] + b"\xff" * 64)
    with CppRuntime() as runtime:
        with pytest.raises(CppLoaderError) as error:
            runtime.load(path)
    assert error.value.stage == "load" and error.value.code is not None and error.value.code != 0
    assert "saved_model.pb" in str(error.value) or "SavedModel" in str(error.value)
    assert str(runtime.library) in str(error.value)


def test_missing_variables_file_gives_tfs_error(exports, tmp_path):
    path = _copy(exports["float32"][0], tmp_path)
    data_files = list((path / "variables").glob("variables.data-*"))
    assert data_files
    for file in data_files:
        file.unlink()
    with pytest.raises(CppLoaderError) as error:
        load_saved_model(path)
    assert error.value.stage == "load"
    assert error.value.code_name in ("NOT_FOUND", "DATA_LOSS", "FAILED_PRECONDITION"), str(error.value)
    assert "variables" in error.value.tf_message


def test_missing_library_names_the_path(tmp_path):
    missing = tmp_path / "nowhere" / "libtensorflow_cc.so.2"
    with pytest.raises(CppLoaderError) as error:
        CppRuntime(missing)
    assert str(missing) in str(error.value) and error.value.stage == "library" and error.value.code is None


def test_a_file_that_is_no_library_names_the_path(tmp_path):
    fake = tmp_path / "libtensorflow_cc.so.2"
    fake.write_text("not a shared object\n")
    with pytest.raises(CppLoaderError) as error:
        CppRuntime(tmp_path)
    assert str(fake) in str(error.value) and error.value.stage == "library"


def test_a_library_without_the_c_api_is_refused():
    # libtensorflow_framework.so.2 is a real TF library, but the C API lives in libtensorflow_cc.
    framework = installed_library().with_name(FRAMEWORK_NAME)
    with pytest.raises(CppLoaderError) as error:
        CppRuntime(framework)
    message = str(error.value)
    assert str(framework) in message and "TF_LoadSessionFromSavedModel" in message


def test_a_crash_of_the_child_is_an_error_not_a_crash(exports):
    path, images, _ = exports["float32"]
    runtime = CppRuntime()
    model = runtime.load(path)
    os.kill(runtime.pid, signal.SIGKILL)
    with pytest.raises(CppLoaderError, match=r"died \(killed by signal SIGKILL\)"):
        model.run("explain", {"images": images})
    with pytest.raises(CppLoaderError, match="closed"):
        model.run("explain", {"images": images})
    model.close()
    runtime.close()


#: A 2×2 lossless WebP (Pillow), decoded by the probe below.
_WEBP = b"RIFF\x1e\x00\x00\x00WEBPVP8L\x11\x00\x00\x00/\x01@\x00\x00\x07\xd0\x83\x1e\xf4\xa0\xff\x81\x88\xe8\x7f\x00\x00"


class _WebPProbe(keras.layers.Layer):
    """Identity on its input, plus a zero-weighted DecodeWebP: an op TF 2.14 does not register."""

    def call(self, x):
        pixels = tf.raw_ops.DecodeWebP(contents=tf.constant(_WEBP), channels=3)
        return x + 0.0 * tf.cast(tf.reduce_sum(pixels), x.dtype)


def _oldest_library() -> Path:
    try:
        return runtime_library(OLDEST, COMPAT_CACHE)
    except RuntimeFetchError as error:  # only when the package index is unreachable
        pytest.skip(f"TF {OLDEST}'s runtime is not cached and cannot be fetched: {error}")


def test_an_op_newer_than_the_runtime_fails_the_matrix_naming_the_runtime(tmp_path):
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [keras.Input(SHAPE), _WebPProbe(), keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")]
    )
    newer = SaliencyExporter(model, ExportConfig(name="webp")).write(tmp_path / "webp", samples=_samples()).path
    plain = SaliencyExporter(_cnn(), ExportConfig(name="plain")).write(tmp_path / "plain", samples=_samples()).path
    oldest = _oldest_library()
    installed = installed_version()
    cells = run_matrix(
        {"webp": MatrixExport(newer, _samples()), "plain": MatrixExport(plain, _samples())},
        {OLDEST: oldest, installed: installed_library()},
        installed,
    )
    by_key = {(c.runtime, c.export): c for c in cells}
    failed = by_key[(OLDEST, "webp")]
    assert not failed.load_ok and not failed.ok and failed.signature == "*"
    assert "DecodeWebP" in failed.error and "not registered" in failed.error.lower(), failed.error
    assert all(c.ok for c in cells if c.export == "plain" or c.runtime == installed), [c for c in cells if not c.ok]
    # The export-time check blocks the same export with that runtime (nothing would be published).
    with pytest.raises(VerificationError, match="DecodeWebP"):
        with CppLoaderCheck(newer, oldest) as check:
            check.verify([])


def test_an_existing_version_can_be_reverified_without_recorded_runs(exports):
    path, images, report = exports["uint8"]
    with CppLoaderCheck(path) as check:
        figures = check.verify([], images=images)
    assert figures["runs"] == {"replayed": 0, "extra": 11}
    assert figures["max_abs_diff"] == 0.0
    assert sorted(figures["signatures"]) == sorted(report["verification"]["cpp_loader"]["signatures"])


def test_a_traced_run_returns_the_step_stats_of_the_cpp_runtime(exports):
    from tensorflow.core.protobuf import config_pb2

    path, images, _ = exports["float32"]
    with load_saved_model(path) as model:
        traced, metadata = model.run_traced("explain", {"images": images})
        plain = model.run("explain", {"images": images})
    for alias in plain:
        np.testing.assert_array_equal(traced[alias], plain[alias])
    stats = config_pb2.RunMetadata.FromString(metadata).step_stats
    ops = {node.timeline_label.split(" = ")[-1].split("(")[0] for dev in stats.dev_stats for node in dev.node_stats}
    nodes = [node for dev in stats.dev_stats for node in dev.node_stats]
    assert nodes and all(node.all_end_rel_micros >= 0 for node in nodes)
    assert any("Conv2D" in op for op in ops), sorted(ops)[:20]


#: An export from a process whose TensorFlow loaded with oneDNN off (a program that imported
#: TF before `exporter`, or TF's own CPU policy on an AMD EPYC), the variable then unset.
ONEDNN_OFF_EXPORT = """
import os, sys
os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
import tensorflow
del os.environ["TF_ENABLE_ONEDNN_OPTS"]
from tensorflow.python.util import _pywrap_util_port
from exporter import ExportConfig, SaliencyExporter
from exporter._config import MethodsConfig
from exporter.methods import IntegratedGradientsParams
from tests.exporter.test_cpp_loader import _cnn, _samples
config = ExportConfig(name="cpp", methods=MethodsConfig(
    enabled=("integrated_gradients",), params=[IntegratedGradientsParams(steps=8)]))
result = SaliencyExporter(_cnn(), config).write(sys.argv[1], samples=_samples())
figures = result.report["verification"]["cpp_loader"]["signatures"]["explain_integrated_gradients"]
print(_pywrap_util_port.IsMklEnabled(), max(figures.values()))
"""


def test_the_cpp_check_runs_the_kernels_of_the_exporting_process(tmp_path):
    """The check compares two loaders of one library, so its child loads TF with the oneDNN
    setting this process's TF has, not the served default: oneDNN's kernels against Eigen's
    moved IG's approximation_error 3.2e-5 on this CNN, and a correct export failed."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    done = subprocess.run(
        [sys.executable, "-c", ONEDNN_OFF_EXPORT, str(tmp_path)],
        capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parents[2], timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    mkl, worst = done.stdout.split()[-2:]
    assert mkl == "False"
    assert float(worst) == 0.0  # same kernels, same graph (as test_every_export_report_has_cpp_loader_figures)
