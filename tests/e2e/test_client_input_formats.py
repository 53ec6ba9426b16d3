"""The typed client against real `uint8` and `image_bytes` exports served by the bundled server.

One Keras model is exported twice (uint8 pixels, and PNG/JPEG bytes decoded in the graph) and
served over gRPC. ``ServingClient.explain`` reads each signature's input dtype from the
metadata and sends what the export takes; the answers are checked against the export run
in-process through the TF1 session loader, and the two exports against each other (the same
pixels give the same maps). Data that cannot be turned into the format is refused before any
Predict is sent; the CLI explains through both exports.
"""

from __future__ import annotations

import io
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from exporter import ExportConfig, Tf1SavedModel, export_model
from exporter._config import InputConfig
from model_server import ModelServer, ServerOptions
from model_server._config import ModelConfig
from serving_client import ServingClient
from serving_client.cli import main as cli_main

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
SHAPE = (10, 10, 3)
KEYS = ("logits", "probabilities", "predicted_class", "target_class", "saliency")


def _pixels(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *SHAPE), dtype=np.uint8)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    keras.utils.set_random_seed(3)
    inputs = keras.Input(SHAPE)
    x = keras.layers.Flatten()(keras.layers.Conv2D(3, 3, activation="relu")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(x))
    root = tmp_path_factory.mktemp("formats")
    paths = {}
    for name in ("uint8", "image_bytes"):
        config = ExportConfig(name=name, input=InputConfig(format=name), warmup_batch_sizes=(1,))
        paths[name] = export_model(model, root / name, config=config)
    options = ServerOptions(
        models=tuple(ModelConfig(name=name, base_path=root / name) for name in paths),
        port=0,
        rest_api_port=None,
        file_system_poll_wait_seconds=0,
    )
    with ModelServer(options) as server:
        yield f"127.0.0.1:{server.ports.grpc}", paths


@pytest.fixture
def uint8_client(served):
    target, _ = served
    with ServingClient(target, "uint8", timeout=30.0) as client:
        yield client


@pytest.fixture
def bytes_client(served):
    target, _ = served
    with ServingClient(target, "image_bytes", timeout=30.0) as client:
        yield client


def _local(path: Path, images: np.ndarray) -> dict[str, np.ndarray]:
    with Tf1SavedModel(path) as saved:
        return saved.run("explain", {"images": images, "target_class": np.full(len(images), -1, np.int32)})


def _assert_same(remote, local: dict[str, np.ndarray], atol: float = 1e-6) -> None:
    for key in KEYS:
        np.testing.assert_allclose(getattr(remote, key), local[key], atol=atol, err_msg=key)


def test_input_formats_are_read_from_the_metadata(uint8_client, bytes_client):
    assert uint8_client.input_format("explain") == "uint8"
    assert uint8_client.input_format("serving_default") == "uint8"
    assert bytes_client.input_format("explain") == "image_bytes"


def test_uint8_export_explains_uint8_pixels_and_integral_arrays(served, uint8_client):
    pixels = _pixels(3)
    remote = uint8_client.explain(pixels)
    _assert_same(remote, _local(served[1]["uint8"], pixels))
    assert remote.saliency.shape == (3, 10, 10)
    # int64 and float arrays holding whole numbers 0..255 are the same pixels.
    for same in (pixels.astype(np.int64), pixels.astype(np.float32)):
        np.testing.assert_array_equal(uint8_client.explain(same).saliency, remote.saliency)
    prediction = uint8_client.predict(pixels[0])
    np.testing.assert_array_equal(prediction.predicted_class, remote.predicted_class[:1])


def test_image_bytes_export_explains_paths_bytes_pil_images_and_arrays(
    served, uint8_client, bytes_client, tmp_path
):
    pixels = _pixels(2, seed=1)
    pngs = [tf.io.encode_png(p).numpy() for p in pixels]
    files = []
    for index, data in enumerate(pngs):
        files.append(tmp_path / f"{index}.png")
        files[-1].write_bytes(data)
    local = _local(served[1]["image_bytes"], np.array(pngs, dtype=object))
    as_pixels = uint8_client.explain(pixels)
    for images in (
        [str(path) for path in files],
        files,  # pathlib paths
        pngs,  # bytes
        [Image.fromarray(p) for p in pixels],
        pixels,  # a uint8 batch the client PNG-encodes
        list(pixels.astype(np.float64)),  # whole-number floats, one array per image
    ):
        remote = bytes_client.explain(images)
        _assert_same(remote, local)
        # PNG is lossless: the bytes export sees the uint8 export's pixels, so the same maps.
        np.testing.assert_allclose(remote.saliency, as_pixels.saliency, atol=1e-6)
    one = bytes_client.explain(files[0])
    np.testing.assert_allclose(one.saliency, local["saliency"][:1], atol=1e-6)


def test_image_bytes_sends_a_jpeg_file_as_it_is_and_the_graph_resizes_it(served, bytes_client, tmp_path):
    big = np.random.default_rng(2).integers(0, 256, (23, 17, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(big).save(buffer, format="JPEG", quality=90)
    path = tmp_path / "photo.jpg"
    path.write_bytes(buffer.getvalue())
    remote = bytes_client.explain(str(path), target_class=2)
    local = _local(served[1]["image_bytes"], np.array([buffer.getvalue()], dtype=object))
    assert remote.saliency.shape == (1, 10, 10)
    assert remote.target_class.tolist() == [2]
    for key in ("logits", "probabilities", "predicted_class"):
        np.testing.assert_allclose(getattr(remote, key), local[key], atol=1e-6, err_msg=key)


@pytest.mark.parametrize(
    ("images", "error", "needle"),
    [
        (np.random.default_rng(0).random((1, *SHAPE)), ValueError, "non-integral"),
        (np.full((1, *SHAPE), 300.0), ValueError, r"values in \[300.0, 300.0\]"),
        (np.full((1, *SHAPE), -1, np.int32), ValueError, "0..255"),
        (np.full((1, *SHAPE), np.nan, np.float32), ValueError, "non-finite"),
        ("digit.png", TypeError, "load_image"),
    ],
    ids=["scaled_floats", "over_255", "negative_ints", "nan", "path"],
)
def test_uint8_export_refuses_what_is_not_pixels_before_predict(uint8_client, images, error, needle):
    uint8_client.input_format("explain")
    with pytest.raises(error, match=needle):
        uint8_client.explain(images)


@pytest.mark.parametrize(
    ("images", "error", "needle"),
    [
        (b"definitely not an image", ValueError, "not an encoded image"),
        (np.full((10, 10, 2), 7, np.uint8), ValueError, "C 1, 3 or 4"),
        (np.full((10, 10, 3), 0.5), ValueError, "non-integral"),
        (Image.new("F", (10, 10)), ValueError, "mode 'F'"),
        (["/nonexistent/picture.png"], FileNotFoundError, "does not exist"),
        ([], ValueError, "empty"),
        (3.5, TypeError, "file paths, encoded image bytes"),
    ],
    ids=["garbage", "two_channels", "scaled_floats", "float_pil", "missing_file", "empty", "scalar"],
)
def test_image_bytes_export_refuses_what_cannot_be_encoded(bytes_client, images, error, needle):
    with pytest.raises(error, match=needle):
        bytes_client.explain(images)


def test_a_text_file_is_refused_by_the_client_not_sent(bytes_client, tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not a picture")
    with pytest.raises(ValueError, match=r"image 0 \('.*notes.png'\) is not an encoded image"):
        bytes_client.explain(str(path))


@pytest.mark.parametrize("model", ["uint8", "image_bytes"])
def test_cli_explains_and_predicts_through_both_exports(served, model, tmp_path, capsys):
    target, _ = served
    pixels = _pixels(2, seed=4)
    files = []
    for index, image in enumerate(pixels):
        files.append(str(tmp_path / f"img{index}.png"))
        Image.fromarray(image).save(files[-1])
    with ServingClient(target, model, timeout=30.0) as client:
        expected = client.explain(pixels if model == "uint8" else files)
    common = ["--server", target, "--model", model, "--timeout", "30"]
    code = cli_main(["explain", *files, *common, "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.strip().splitlines()
    assert len(lines) == 2
    for line, predicted in zip(lines, expected.predicted_class, strict=True):
        assert f"predicted={predicted}" in line
        overlay = np.asarray(Image.open(line.split("overlay=")[1]))
        assert overlay.shape == (10, 10, 3)
    code = cli_main(["predict", *files, *common])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert [line.split("\t")[1] for line in captured.out.strip().splitlines()] == [
        f"predicted={p}" for p in expected.predicted_class
    ]
