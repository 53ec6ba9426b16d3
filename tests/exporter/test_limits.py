"""Per-request bounds in the exported graph: decompression bombs and oversize batches are refused.

Both are checked by the graph itself (stock TF Serving runs it with none of our server's
checks), so they are tested through the TF1 session loader and through TF's C++ loader
(`exporter._cpp_loader`, the TF Serving path); bombs are refused before anything is
decoded, which the peak-RSS test measures in a child process.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from exporter import ConfigError, ExportConfig, Tf1SavedModel
from exporter._config import InputConfig, LimitsConfig, MethodsConfig, config_from_mapping
from exporter._limits import default_max_image_bytes, default_max_pixels, graph_bytes
from exporter.methods import IntegratedGradientsParams
from tests.exporter.helpers import export
from tests.image_bombs import bmp, bmp_image, gif, patch_jpeg_size, png_bomb, webp

SHAPE = (28, 28, 1)
BUDGET_MIB = 48
METHODS = MethodsConfig(
    enabled=("integrated_gradients",), params=[IntegratedGradientsParams(steps=8)], internal_batch=4
)
MAX_PIXELS = 64 * 64


def gray_model() -> keras.Model:
    keras.utils.set_random_seed(7)
    inputs = keras.Input(SHAPE)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="head")(x))


def png(height: int = 28, width: int = 28, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 1), dtype=np.uint8)
    return tf.io.encode_png(pixels).numpy()


def jpeg(height: int = 28, width: int = 28) -> bytes:
    return tf.io.encode_jpeg(np.full((height, width, 1), 128, np.uint8)).numpy()


def strings(*items: bytes) -> np.ndarray:
    return np.array(list(items), dtype=object)


@pytest.fixture(scope="module")
def bytes_export(tmp_path_factory) -> Path:
    config = ExportConfig(
        name="gray",
        input=InputConfig(format="image_bytes", max_pixels=MAX_PIXELS),
        methods=METHODS,
        limits=LimitsConfig(memory_budget_mib=BUDGET_MIB),
    )
    return export(gray_model(), tmp_path_factory.mktemp("bytes"), config)


@pytest.fixture(scope="module")
def report(bytes_export) -> dict:
    return json.loads((bytes_export / "assets.extra" / "export_report.json").read_text())


@pytest.fixture(scope="module")
def saved(bytes_export):
    with Tf1SavedModel(bytes_export) as model:
        yield model


@pytest.fixture(scope="module")
def cpp_model(bytes_export):
    from exporter._cpp_loader import load_saved_model

    with load_saved_model(bytes_export) as model:
        yield model


#: TF Serving's oldest runtime here; `make compat` fetches it (tests do not download it).
OLDEST = Path(__file__).resolve().parents[2] / "build" / "compat" / "runtimes" / "tf-2.14.1"


@pytest.mark.integration
@pytest.mark.skipif(not (OLDEST / "libtensorflow_cc.so.2").is_file(), reason=f"no TF 2.14 runtime in {OLDEST} (make compat fetches it)")
def test_the_guards_ops_run_on_tf_2_14s_cpp_runtime(bytes_export, report):
    from exporter._cpp_loader import CppLoaderError, load_saved_model

    with load_saved_model(bytes_export, OLDEST) as model:
        assert model.runtime.version.startswith("2.14")
        out = model.run("explain", {"images": strings(png(), jpeg(), png(40, 50))})
        assert out["saliency"].shape == (3, 28, 28)
        for kind in ("png", "jpeg", "bmp", "gif", "oversize_bytes"):
            make, message = BOMBS[kind]
            with pytest.raises(CppLoaderError, match=re.escape(message)):
                model.run("explain", {"images": strings(png(), make())})
        maximum = report["limits"]["signatures"]["explain_integrated_gradients"]["max_batch"]
        with pytest.raises(CppLoaderError, match=f"batch of {maximum + 1} exceeds the maximum batch"):
            model.run("explain_integrated_gradients", {"images": strings(*[png()] * (maximum + 1))})


BOMBS = {
    "png": (lambda: png_bomb(20000, 20000), "image 1 declares 20000×20000 pixels; this export accepts at most 4096 pixels (64×64) (input.max_pixels)"),
    "jpeg": (lambda: patch_jpeg_size(jpeg(), 20000, 20000), "image 1 declares 20000×20000 pixels"),
    "bmp": (lambda: bmp(20000, -20000), "image 1 declares 20000×20000 pixels"),
    "png_wide": (lambda: png_bomb(2**31 - 1, 1), "image 1 declares 2147483647×1 pixels"),
    # (2^32 − 1)² overflows int64: each side is checked on its own first.
    "png_overflow": (lambda: png_bomb(2**32 - 1, 2**32 - 1), "image 1 declares 4294967295×4294967295 pixels"),
    "png_zero_height": (lambda: png_bomb(2**20, 0), "image 1 declares 1048576×0 pixels"),
    "gif": (lambda: gif(20, 20), "image 1 is a GIF; this export decodes PNG, JPEG and BMP only"),
    "webp": (lambda: webp(20, 20), "image 1 is a WebP; this export decodes PNG, JPEG and BMP only"),
    "oversize_bytes": (lambda: png() + bytes(default_max_image_bytes(MAX_PIXELS)), "bytes per image (input.max_image_bytes)"),
    "png_without_ihdr": (lambda: png_bomb(30, 30)[:12] + b"tEXt" + bytes(40), "image 1 is a PNG whose first chunk is not IHDR"),
}


@pytest.mark.integration
@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_bombs_are_refused_through_the_tf1_loader(saved, kind):
    make, message = BOMBS[kind]
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(message)):
        saved.run("explain", {"images": strings(png(), make())})
    assert saved.run("explain", {"images": strings(png())})["saliency"].shape == (1, 28, 28)


@pytest.mark.integration
@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_bombs_are_refused_through_the_cpp_loader(cpp_model, kind):
    from exporter._cpp_loader import CppLoaderError

    make, message = BOMBS[kind]
    for signature in ("serving_default", "explain_integrated_gradients"):
        with pytest.raises(CppLoaderError, match=re.escape(message)) as info:
            cpp_model.run(signature, {"images": strings(png(), make())})
        assert info.value.code_name == "INVALID_ARGUMENT"
    assert cpp_model.run("explain", {"images": strings(png())})["saliency"].shape == (1, 28, 28)


@pytest.mark.integration
def test_every_accepted_format_within_the_limits_is_decoded(saved):
    images = strings(png(64, 64), jpeg(64, 64), png(30, 20))  # 64×64: exactly max_pixels
    out = saved.run("explain", {"images": images})
    assert out["saliency"].shape == (3, 28, 28) and np.isfinite(out["saliency"]).all()
    # A BMP within the limit passes the guard and reaches TF's decoder, which decodes BMP
    # to 3 or 4 channels only (this model takes 1).
    rows = [[(i * 9 % 256, 0, 0)] * 64 for i in range(64)]
    with pytest.raises(tf.errors.InvalidArgumentError, match="must be 0, 3 or 4 for BMP"):
        saved.run("explain", {"images": strings(bmp_image(rows))})
    with pytest.raises(tf.errors.InvalidArgumentError, match="image 0 declares 65×64 pixels"):
        saved.run("serving_default", {"images": strings(png(64, 65))})


@pytest.mark.integration
def test_limits_are_recorded_in_the_report(report):
    limits = report["limits"]
    assert limits["memory_budget_mib"] == BUDGET_MIB and limits["max_images"] == 1024
    assert limits["input"] == {
        "max_pixels": MAX_PIXELS,
        "max_image_bytes": default_max_image_bytes(MAX_PIXELS),
        "accepted_formats": ["PNG", "JPEG", "BMP"],
    }
    signatures = limits["signatures"]
    assert set(signatures) == {"serving_default", "explain", "explain_integrated_gradients"}
    for name, entry in signatures.items():
        assert entry["source"] == "measured", name
        fits = (BUDGET_MIB * 2**20 - entry["fixed_bytes"]) // entry["bytes_per_image"]
        assert entry["max_batch"] == min(fits, 1024) >= 8, (name, entry)
        assert entry["exporter_batch"] == 8 and entry["over_budget"] is False
    # IG evaluates 9 path points, 4 at a time: each image costs several times an explain.
    assert signatures["explain_integrated_gradients"]["bytes_per_image"] > 3 * signatures["explain"]["bytes_per_image"]
    assert signatures["explain_integrated_gradients"]["max_batch"] < signatures["explain"]["max_batch"]


@pytest.mark.integration
@pytest.mark.parametrize("signature", ["serving_default", "explain", "explain_integrated_gradients"])
@pytest.mark.parametrize("loader", ["tf1", "cpp"])
def test_a_batch_just_under_and_just_over_each_limit(saved, cpp_model, report, signature, loader):
    maximum = report["limits"]["signatures"][signature]["max_batch"]
    image = png()
    if loader == "tf1":
        run, error = saved.run, tf.errors.InvalidArgumentError
    else:
        from exporter._cpp_loader import CppLoaderError

        run, error = cpp_model.run, CppLoaderError
    out = run(signature, {"images": strings(*[image] * maximum)})
    assert out["logits"].shape == (maximum, 3)
    expected = f"batch of {maximum + 1} exceeds the maximum batch of {signature}: {maximum} (config [limits] {signature})"
    with pytest.raises(error, match=re.escape(expected)):
        run(signature, {"images": strings(*[image] * (maximum + 1))})


@pytest.mark.integration
def test_signature_defs_are_unchanged_for_clients(bytes_export):
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((bytes_export / "saved_model.pb").read_bytes())
    sigs = {k: v for k, v in saved_model.meta_graphs[0].signature_def.items() if not k.startswith("__")}

    def spec(infos):  # None: unknown rank (target_class [batch] or [batch, K], and what follows it)
        return {
            alias: (info.dtype, None if info.tensor_shape.unknown_rank else [d.size for d in info.tensor_shape.dim])
            for alias, info in infos.items()
        }

    string, int32, float32 = tf.string.as_datatype_enum, tf.int32.as_datatype_enum, tf.float32.as_datatype_enum
    prediction = {"logits": (float32, [-1, 3]), "probabilities": (float32, [-1, 3]), "predicted_class": (int32, [-1])}
    explanation = {**prediction, "target_class": (int32, None), "saliency": (float32, None)}
    assert spec(sigs["serving_default"].inputs) == {"images": (string, [-1])}
    assert spec(sigs["serving_default"].outputs) == prediction
    assert spec(sigs["explain"].inputs) == {"images": (string, [-1]), "target_class": (int32, None)}
    # IG's per-request parameters; `baseline` is in the model's input space (float, [B, N, H, W, C]).
    assert spec(sigs["explain_integrated_gradients"].inputs) == {
        "images": (string, [-1]), "target_class": (int32, None), "steps": (int32, [-1]), "samples": (int32, [-1]),
        "noise": (float32, [-1]), "baseline": (float32, [-1, -1, 28, 28, 1]),
    }
    assert spec(sigs["explain"].outputs) == explanation
    assert spec(sigs["explain_integrated_gradients"].outputs) == {
        **explanation, "attributions": (float32, None), "approximation_error": (float32, None)
    }


@pytest.mark.integration
def test_float_exports_enforce_configured_batch_limits(tmp_path):
    config = ExportConfig(limits=LimitsConfig(max_batch={"explain": 4}), warmup_batch_sizes=(1, 8))
    path = export(gray_model(), tmp_path, config)
    report = json.loads((path / "assets.extra" / "export_report.json").read_text())
    assert report["limits"]["signatures"]["explain"] == {"max_batch": 4, "exporter_batch": 8, "source": "config [limits] explain"}
    assert report["limits"]["input"] is None
    with Tf1SavedModel(path) as model:
        assert model.run("explain", {"images": np.zeros((4, *SHAPE), np.float32)})["saliency"].shape == (4, 28, 28)
        with pytest.raises(tf.errors.InvalidArgumentError, match="batch of 5 exceeds the maximum batch of explain: 4 "):
            model.run("explain", {"images": np.zeros((5, *SHAPE), np.float32)})
        # Warmup batches stay within the limit, so a server replaying them loads the model.
        assert model.run("serving_default", {"images": np.zeros((8, *SHAPE), np.float32)})["logits"].shape == (8, 3)


@pytest.mark.integration
def test_a_budget_below_the_exporters_own_batch_gives_that_batch_and_says_so(caplog):
    from exporter import SaliencyExporter

    config = ExportConfig(methods=METHODS, limits=LimitsConfig(memory_budget_mib=1))
    signatures = SaliencyExporter(gray_model(), config).signatures
    with caplog.at_level("WARNING", logger="exporter"):
        entry = signatures.limits_report()["signatures"]["explain_integrated_gradients"]
    cost = entry["fixed_bytes"] + entry["bytes_per_image"]
    assert (1 << 20) // cost < 8  # the budget covers fewer images than verification runs
    assert entry["max_batch"] == 8 and entry["over_budget"] is True
    assert any("covers" in r.getMessage() and "explain_integrated_gradients" in r.getMessage() for r in caplog.records)


def test_graph_bytes_counts_static_tensor_sizes():
    @tf.function(autograph=False)
    def f(x):
        return tf.reduce_sum(x * 2.0)

    graph = f.get_concrete_function(tf.TensorSpec([10, 10], tf.float32)).graph
    # placeholder 400 + mul 400 + the constant 4 + Sum's axes (2 int32) and result (4)
    assert 800 < graph_bytes(graph) < 900


def test_defaults_scale_with_the_model_input():
    assert default_max_pixels((28, 28, 1)) == 1024 * 1024
    assert default_max_pixels((224, 224, 3)) == 64 * 224 * 224
    assert default_max_pixels((1024, 1024, 3)) == 4096 * 4096
    assert default_max_image_bytes(1024 * 1024) == 4 * 1024 * 1024 + 64 * 1024


def test_limits_config_is_parsed_and_checked():
    config = config_from_mapping(
        {
            "methods": {"enabled": ["integrated_gradients"]},
            "input": {"format": "image_bytes", "max_pixels": 100, "max_image_bytes": 1000},
            "limits": {"memory_budget_mib": 512, "max_images": 64, "explain_integrated_gradients": 8},
        }
    )
    limits = config.limits
    assert (limits.memory_budget_mib, limits.max_images, limits.max_batch) == (512, 64, (("explain_integrated_gradients", 8),))
    # The batch the exporter runs each signature at itself (verification at up to 8).
    assert limits.floor_of("explain_integrated_gradients") == 8 and limits.floor_of("serving_default") == 8
    assert (config.input.max_pixels, config.input.max_image_bytes) == (100, 1000)
    default = ExportConfig().limits
    assert (default.memory_budget_mib, default.max_images, default.max_batch) == (2048, 1024, ())
    cases = [
        ({"limits": {"explain_smoothgrad": 8}}, "limits.explain_smoothgrad is set but explain_smoothgrad is not exported"),
        ({"limits": {"explain_magic": 8}}, "Unknown key limits.explain_magic in [limits]"),
        ({"limits": {"explain": 0}}, "limits.explain must be >= 1; received 0"),
        ({"limits": {"explain": 2}}, "limits.explain = 2 is below verification.num_samples = 4"),
        ({"limits": {"memory_budget_mib": 1.5}}, "limits.memory_budget_mib must be an integer"),
        ({"input": {"max_pixels": 100}}, "input.max_pixels applies to the image_bytes format"),
        ({"input": {"format": "image_bytes", "max_image_bytes": True}}, "input.max_image_bytes must be an integer"),
    ]
    for mapping, message in cases:
        with pytest.raises(ConfigError, match=re.escape(message)):
            config_from_mapping(mapping)


# ---- peak memory: a bomb is refused before anything is decoded ---------------------------

_RSS_PROBE = r"""
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, tensorflow as tf
from exporter import Tf1SavedModel
from tests.image_bombs import png_bomb
def kib(field, pid="self"):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
def reset_peak(pid="self"):
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS
export, side, loader = sys.argv[1], int(sys.argv[2]), sys.argv[3]
bomb = np.array([png_bomb(side, side, real=True)], dtype=object)
good = np.array([tf.io.encode_png(np.zeros((28, 28, 1), np.uint8)).numpy()], dtype=object)
if loader == "tf1":
    model, pid, error = Tf1SavedModel(export), "self", tf.errors.InvalidArgumentError
else:
    from exporter._cpp_loader import CppLoaderError, load_saved_model
    model = load_saved_model(export)
    pid, error = str(model.runtime.pid), CppLoaderError
model.run("explain", {"images": good})  # warm: the first run allocates caches
reset_peak(pid)
before = kib("VmRSS", pid)
try:
    model.run("explain", {"images": bomb})
    refused = False
except error as exc:
    refused = "declares" in str(exc)
guarded = (kib("VmHWM", pid) - before) / 1024
# Control, in this process: decoding the same bytes without the guard does grow.
reset_peak()
before = kib("VmRSS")
shape = tf.io.decode_png(bomb[0]).shape
unguarded = (kib("VmHWM") - before) / 1024
print(refused, guarded, unguarded, len(bomb[0]))
"""


@pytest.mark.integration
@pytest.mark.parametrize("loader", ["tf1", "cpp"])
def test_a_real_bomb_is_refused_with_peak_rss_near_its_baseline(bytes_export, loader):
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "CUDA_VISIBLE_DEVICES": ""}
    side = 8000  # 64 MB of pixels from a ~63 KB file (within max_image_bytes)
    done = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, str(bytes_export), str(side), loader],
        capture_output=True, text=True, env=env, cwd=root, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    refused, guarded, unguarded, size = done.stdout.split()[-4:]
    print(f"{loader}: bomb of {int(size)} bytes: peak growth {float(guarded):.1f} MiB guarded, "
          f"{float(unguarded):.1f} MiB decoded without the guard")
    assert refused == "True"
    assert float(guarded) < 16, guarded
    assert float(unguarded) > side * side / 2**20 * 0.9, unguarded  # the measurement sees a decode
