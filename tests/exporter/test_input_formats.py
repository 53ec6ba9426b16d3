"""`[input] format`: uint8 pixels and encoded image bytes, converted/decoded in the graph.

The maps must be those of the float path on the same pixels (PNG is lossless, so
exactly the same pixels), the SignatureDefs must say the format's dtype, corrupt bytes
must be INVALID_ARGUMENT, and warmup requests must carry the right dtype.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import prediction_log_pb2

from exporter import ConfigError, ExportConfig, Tf1SavedModel, UnsupportedModelError
from exporter._config import InputConfig, MethodsConfig, config_from_mapping
from exporter._export import SaliencyExporter
from exporter.methods import IntegratedGradientsParams
from tests.exporter.helpers import export

SHAPE = (8, 8, 3)
METHODS = MethodsConfig(
    enabled=("integrated_gradients", "gradient_x_input", "gradcam"),
    params=[IntegratedGradientsParams(steps=8)],
    internal_batch=4,
)
EXPLAINS = ("explain", "explain_integrated_gradients", "explain_gradient_x_input", "explain_gradcam")


def rgb_model() -> keras.Model:
    keras.utils.set_random_seed(21)
    inputs = keras.Input(SHAPE)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="head")(x))


def pixels(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *SHAPE), dtype=np.uint8)


def png(images: np.ndarray) -> np.ndarray:
    return np.array([tf.io.encode_png(image).numpy() for image in images], dtype=object)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    model = rgb_model()
    paths = {}
    for fmt in ("float32", "uint8", "image_bytes"):
        config = ExportConfig(name="rgb", input=InputConfig(format=fmt), methods=METHODS)
        paths[fmt] = export(model, tmp_path_factory.mktemp(fmt), config)
    return paths


@pytest.fixture(scope="module")
def bytes_saved(exports):
    with Tf1SavedModel(exports["image_bytes"]) as saved:
        yield saved


@pytest.mark.integration
def test_uint8_and_bytes_give_the_float_paths_maps_on_the_same_pixels(exports):
    x = pixels(5)
    feeds = {"float32": x.astype(np.float32) / 255.0, "uint8": x, "image_bytes": png(x)}
    outs = {}
    for fmt, path in exports.items():
        with Tf1SavedModel(path) as saved:
            outs[fmt] = {name: saved.run(name, {"images": feeds[fmt]}) for name in EXPLAINS}
    for fmt in ("uint8", "image_bytes"):
        for name in EXPLAINS:
            for key in ("logits", "saliency"):
                np.testing.assert_allclose(outs[fmt][name][key], outs["float32"][name][key], atol=1e-5, err_msg=f"{fmt} {name} {key}")
            np.testing.assert_array_equal(outs[fmt][name]["target_class"], outs["float32"][name]["target_class"])
        np.testing.assert_allclose(
            outs[fmt]["explain_integrated_gradients"]["attributions"],
            outs["float32"]["explain_integrated_gradients"]["attributions"],
            atol=1e-5,
        )


@pytest.mark.integration
def test_scale_and_offset_define_the_model_input(tmp_path):
    # model_input = pixel * scale + offset: pixels 0..255 → [-1, 1].
    model = rgb_model()
    config = ExportConfig(input=InputConfig(format="uint8", scale=2 / 255, offset=-1.0))
    x = pixels(3, seed=1)
    with Tf1SavedModel(export(model, tmp_path, config)) as saved:
        logits = saved.run("serving_default", {"images": x})["logits"]
    head = SaliencyExporter(model).head
    expected = head.logits_fn(tf.constant(x.astype(np.float32) * np.float32(2 / 255) - 1.0)).numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-5)


@pytest.mark.integration
def test_signature_defs_carry_each_formats_dtype(exports):
    h, w, c = SHAPE
    expected_images = {
        "float32": (tf.float32.as_datatype_enum, [-1, h, w, c]),
        "uint8": (tf.uint8.as_datatype_enum, [-1, h, w, c]),
        "image_bytes": (tf.string.as_datatype_enum, [-1]),
    }
    for fmt, path in exports.items():
        saved_model = saved_model_pb2.SavedModel()
        saved_model.ParseFromString((path / "saved_model.pb").read_bytes())
        sigs = saved_model.meta_graphs[0].signature_def
        for name in ("serving_default", *EXPLAINS):
            info = sigs[name].inputs["images"]
            assert (info.dtype, [d.size for d in info.tensor_shape.dim]) == expected_images[fmt], (fmt, name)
            assert sigs[name].outputs["logits"].dtype == tf.float32.as_datatype_enum
            if name != "serving_default":
                # Unknown rank: [batch, H, W], or [batch, K, H, W] for a [batch, K] target_class.
                assert sigs[name].outputs["saliency"].tensor_shape.unknown_rank


@pytest.mark.integration
def test_bytes_of_another_size_and_jpeg_are_decoded_and_resized(bytes_saved):
    big = np.random.default_rng(3).integers(0, 256, (20, 13, 3), dtype=np.uint8)
    jpeg = tf.io.encode_jpeg(big).numpy()
    out = bytes_saved.run("explain", {"images": np.array([png(big[None])[0], jpeg], dtype=object)})
    assert out["saliency"].shape == (2, 8, 8)
    assert np.isfinite(out["saliency"]).all()
    # Bilinear resize in the graph, without aspect preservation, like tf.image.resize.
    resized = tf.image.resize(big.astype(np.float32), (8, 8), method="bilinear").numpy()
    expected = SaliencyExporter(rgb_model()).head.logits_fn(tf.constant(resized[None] / 255.0)).numpy()
    np.testing.assert_allclose(out["logits"][:1], expected, atol=1e-4)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"certainly not an image", "images could not be decoded"),
        (b"", "images could not be decoded"),
        ("truncated", "Invalid PNG"),
    ],
    ids=["garbage", "empty", "truncated_png"],
)
def test_corrupt_bytes_are_invalid_argument_through_the_tf1_loader(bytes_saved, data, needle):
    if data == "truncated":
        data = png(pixels(1))[0][:40]
    good = png(pixels(1))[0]
    with pytest.raises(tf.errors.InvalidArgumentError, match=needle):
        bytes_saved.run("explain", {"images": np.array([good, data], dtype=object)})
    assert bytes_saved.run("explain", {"images": np.array([good], dtype=object)})["saliency"].shape == (1, 8, 8)


@pytest.mark.integration
@pytest.mark.parametrize("fmt", ["uint8", "image_bytes"])
def test_warmup_requests_carry_the_formats_dtype_and_replay(exports, fmt):
    path = exports[fmt] / "assets.extra" / "tf_serving_warmup_requests"
    expected = tf.uint8 if fmt == "uint8" else tf.string
    seen = set()
    with Tf1SavedModel(exports[fmt]) as saved:
        for record in tf.data.TFRecordDataset(str(path)):
            log = prediction_log_pb2.PredictionLog()
            log.ParseFromString(record.numpy())
            request = log.predict_log.request
            assert request.inputs["images"].dtype == expected.as_datatype_enum
            inputs = {alias: tf.make_ndarray(proto) for alias, proto in request.inputs.items()}
            outputs = saved.run(request.model_spec.signature_name, inputs)
            assert all(np.isfinite(v).all() for v in outputs.values())
            seen.add(request.model_spec.signature_name)
    assert seen == {"serving_default", *EXPLAINS}


def test_input_config_is_parsed_and_checked():
    config = config_from_mapping({"input": {"format": "uint8"}})
    assert config.input == InputConfig("uint8", 1 / 255, 0.0)
    config = config_from_mapping({"input": {"format": "image_bytes", "scale": 0.5, "offset": -1}})
    assert (config.input.scale, config.input.offset) == (0.5, -1.0)
    assert ExportConfig().input == InputConfig("float32", None, None)
    with pytest.raises(ConfigError, match="input.format must be one of float32, uint8, image_bytes"):
        config_from_mapping({"input": {"format": "png"}})
    with pytest.raises(ConfigError, match="apply to the uint8 and image_bytes formats"):
        config_from_mapping({"input": {"scale": 2.0}})
    with pytest.raises(ConfigError, match="Unknown key input.mean"):
        config_from_mapping({"input": {"mean": 0.5}})


@pytest.mark.integration
def test_image_bytes_needs_a_decodable_channel_count():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 2))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inputs)))
    with pytest.raises(UnsupportedModelError, match="1 .grayscale., 3 .RGB. or 4 .RGBA. channels; the model takes 2"):
        SaliencyExporter(model, ExportConfig(input=InputConfig(format="image_bytes")))


@pytest.mark.integration
def test_cli_input_format_flag(tmp_path):
    from exporter.cli import main

    model_path = tmp_path / "m.keras"
    rgb_model().save(model_path)
    assert main(["--model", str(model_path), "--output", str(tmp_path / "out"), "-q", "--input-format", "uint8"]) == 0
    with Tf1SavedModel(tmp_path / "out" / "1") as saved:
        assert saved.signature_defs["explain"].inputs["images"].dtype == tf.uint8.as_datatype_enum
