"""Several classes per call over gRPC: `ServingClient.explain(classes=, top_k=)` and the CLI.

The bundled server serves a real export; each `[B, K]` answer is compared with K one-class
calls of the same server and with the TF1 session, `top_k` with NumPy's argsort of the
logits, and refusals are typed errors after which the server keeps serving.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from PIL import Image

from exporter import ExportConfig, Tf1SavedModel, export_model
from exporter._config import LimitsConfig, MethodsConfig
from exporter.methods import IntegratedGradientsParams
from model_server import ModelServer, ServerOptions
from serving_client import InvalidArgumentError, ServingClient
from serving_client.cli import main

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
SHAPE = (10, 10, 1)
CLASSES = 5
MAX_ROWS = 6  # explain's maximum batch: B·K rows


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    keras.utils.set_random_seed(5)
    inputs = keras.Input(SHAPE)
    x = keras.layers.Conv2D(3, 3, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(CLASSES, activation="softmax")(keras.layers.Flatten()(x)))
    base = tmp_path_factory.mktemp("classes") / "clf"
    config = ExportConfig(
        name="clf",
        warmup_batch_sizes=(1,),
        methods=MethodsConfig(enabled=("vanilla", "integrated_gradients"), params=[IntegratedGradientsParams(steps=4)]),
        limits=LimitsConfig(max_batch={"explain": MAX_ROWS}),
    )
    path = export_model(model, base, config=config)
    options = ServerOptions.single_model("clf", base, port=0, rest_api_port=0)
    with ModelServer(options) as server, ServingClient(f"127.0.0.1:{server.ports.grpc}", "clf", timeout=60.0) as client:
        yield client, path, f"127.0.0.1:{server.ports.grpc}"


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *SHAPE), dtype=np.float32)


@pytest.mark.parametrize("method", ["vanilla", "integrated_gradients"])
def test_classes_equal_one_call_per_class_and_the_session(served, method):
    client, path, _ = served
    x = _images(2)
    several = client.explain(x, classes=[[3, -2], [0, -1]], method=method)
    assert several.saliency.shape == (2, 2, *SHAPE[:2]) and several.classes_per_image == 2
    with Tf1SavedModel(path) as saved:
        local = saved.run(several.signature_name, {"images": x, "target_class": np.array([[3, -2], [0, -1]], np.int32)})
    np.testing.assert_allclose(several.saliency, local["saliency"], atol=1e-6)
    for k in range(2):
        one = client.explain(x, several.target_class[:, k], method=method)
        column = several.for_class(k)
        np.testing.assert_array_equal(column.target_class, one.target_class)
        np.testing.assert_allclose(column.saliency, one.saliency, atol=1e-6)
        if method == "integrated_gradients":
            np.testing.assert_allclose(column.attributions, one.attributions, atol=1e-6)
            np.testing.assert_allclose(column.approximation_error, one.approximation_error, atol=1e-6)
    np.testing.assert_array_equal(several.predicted_class, one.predicted_class)


def test_top_k_explains_the_k_most_probable_classes(served):
    client, _, _ = served
    x = _images(2, seed=4)
    out = client.explain(x, top_k=3)
    np.testing.assert_array_equal(out.target_class, np.argsort(-out.logits, axis=1, kind="stable")[:, :3])
    np.testing.assert_array_equal(out.target_class[:, 0], out.predicted_class)


def test_refusals_are_typed_and_the_server_keeps_serving(served):
    client, _, _ = served
    with pytest.raises(InvalidArgumentError, match=r"target_class out of range.*received.*7"):
        client.explain(_images(1), classes=[1, 7])
    with pytest.raises(InvalidArgumentError, match=rf"batch of 3 images × 3 classes = 9 rows exceeds the maximum batch of explain: {MAX_ROWS}"):
        client.explain(_images(3), top_k=3)
    with pytest.raises(ValueError, match="target_class.*classes"):
        client.explain(_images(1), 2, classes=[1])
    with pytest.raises(ValueError, match="classes or top_k"):
        client.explain(_images(1), classes=[1], top_k=2)
    with pytest.raises(ValueError, match=r"\[2, K\]"):
        client.explain(_images(2), classes=[[1], [2], [3]])
    assert client.explain(_images(3), classes=[0, 1]).saliency.shape == (3, 2, *SHAPE[:2])


def test_cli_writes_one_png_per_image_and_class(served, tmp_path, capsys):
    client, _, target = served
    files = []
    for i in range(2):
        files.append(tmp_path / f"img{i}.npy")
        np.save(files[-1], _images(1, seed=10 + i)[0])
    common = ["--server", target, "--model", "clf", "--timeout", "60", "--out", str(tmp_path / "out")]
    assert main(["explain", *map(str, files), "--classes", "1,3", *common]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [(line.split("\t")[0], line.split("target=")[1].split("\t")[0]) for line in lines] == [
        (str(files[0]), "1"), (str(files[0]), "3"), (str(files[1]), "1"), (str(files[1]), "3")]
    written = [line.split("overlay=")[1] for line in lines]
    assert len(set(written)) == 4 and all(Image.open(path).size[0] > 0 for path in written)
    expected = client.explain(np.stack([np.load(f) for f in files]), classes=[1, 3])
    assert main(["explain", str(files[0]), "--top-k", "2", *common]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    top = np.argsort(-expected.logits[0], kind="stable")[:2]
    assert [int(line.split("target=")[1].split("\t")[0]) for line in lines] == top.tolist()
    assert main(["explain", str(files[0]), "--top-k", "2", "--target-class", "1", *common]) == 1
    assert "not both" in capsys.readouterr().err
