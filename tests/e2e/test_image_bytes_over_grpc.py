"""An `image_bytes` export served by the bundled server: PNG bytes over gRPC, and corrupt
bytes answered with INVALID_ARGUMENT while the server keeps serving."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from exporter import ExportConfig, Tf1SavedModel, export_model
from exporter._config import InputConfig
from model_server import ModelServer, ServerOptions
from serving_client import InvalidArgumentError, ServingClient

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
SHAPE = (10, 10, 3)


def _png(n: int, seed: int = 0) -> np.ndarray:
    pixels = np.random.default_rng(seed).integers(0, 256, (n, *SHAPE), dtype=np.uint8)
    return np.array([tf.io.encode_png(p).numpy() for p in pixels], dtype=object)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    keras.utils.set_random_seed(8)
    inputs = keras.Input(SHAPE)
    x = keras.layers.Flatten()(keras.layers.Conv2D(3, 3, activation="relu")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(x))
    base = tmp_path_factory.mktemp("bytes") / "png"
    config = ExportConfig(name="png", input=InputConfig(format="image_bytes"), warmup_batch_sizes=(1,))
    path = export_model(model, base, config=config)
    options = ServerOptions.single_model("png", base, port=0, rest_api_port=0, file_system_poll_wait_seconds=0.2)
    with ModelServer(options) as server, ServingClient(f"127.0.0.1:{server.ports.grpc}", "png", timeout=30.0) as client:
        yield client, path


def test_png_bytes_over_grpc_equal_the_in_process_run(served):
    client, path = served
    images = _png(3)
    remote = client.raw_predict({"images": images}, signature="explain")
    with Tf1SavedModel(path) as saved:
        local = saved.run("explain", {"images": images})
    assert remote["saliency"].shape == (3, 10, 10)
    for key in ("logits", "saliency", "target_class"):
        np.testing.assert_allclose(remote[key], local[key], atol=1e-6, err_msg=key)


@pytest.mark.parametrize(
    ("bad", "needle"),
    [(b"definitely not a png", "could not be decoded"), (None, "Invalid PNG")],
    ids=["garbage", "truncated_png"],
)
def test_corrupt_bytes_are_invalid_argument_and_the_next_request_succeeds(served, bad, needle):
    client, _ = served
    good = _png(1, seed=1)[0]
    bad = good[:40] if bad is None else bad
    with pytest.raises(InvalidArgumentError, match=needle):
        client.raw_predict({"images": np.array([good, bad], dtype=object)}, signature="explain")
    out = client.raw_predict({"images": np.array([good], dtype=object)}, signature="explain")
    assert out["saliency"].shape == (1, 10, 10)
