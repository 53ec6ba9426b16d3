"""serving_client against the bundled server serving real exports, over a real socket.

The numbers are checked against the export loaded in-process through the TF1 session
loader and against an eager GradientTape reference; errors must arrive as the client's
typed exceptions with the server's message, and the server must keep serving.
"""

from __future__ import annotations

import threading
import time

import keras
import numpy as np
import pytest

from exporter import ExportConfig, Tf1SavedModel, export_model
from exporter._reference import LogitsCopy, numpy_saliency
from model_server import ModelServer, ServerOptions
from serving_client import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    ServingClient,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
SHAPE = (12, 12, 1)


def _model(seed: int, size: tuple[int, int, int] = SHAPE) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(size)
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.5)(x)
    return keras.Model(inputs, keras.layers.Dense(5, activation="softmax")(x))


def _images(n: int, size: tuple[int, int, int] = SHAPE, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *size), dtype=np.float32)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    base = tmp_path_factory.mktemp("e2e") / "clf"
    model = _model(1)
    path = export_model(model, base, config=ExportConfig(name="clf", warmup_batch_sizes=(1,)))
    options = ServerOptions.single_model("clf", base, port=0, rest_api_port=0, file_system_poll_wait_seconds=0.2)
    with ModelServer(options) as server:
        yield server, model, base, path


@pytest.fixture
def client(served):
    server = served[0]
    with ServingClient(f"127.0.0.1:{server.ports.grpc}", "clf", timeout=30.0) as c:
        yield c


def test_explain_over_grpc_equals_the_in_process_tf1_run_and_the_eager_reference(served, client):
    _, model, _, path = served
    x = _images(6)
    remote = client.explain(x)
    with Tf1SavedModel(path) as saved:
        local = saved.run("explain", {"images": x})
    for key in ("logits", "probabilities", "predicted_class", "target_class", "saliency"):
        np.testing.assert_allclose(getattr(remote, key), local[key], atol=1e-6, err_msg=key)
    reference = LogitsCopy.of(model).gradient(x, remote.predicted_class)
    np.testing.assert_allclose(remote.saliency, numpy_saliency(reference, "max_abs"), atol=1e-5)
    np.testing.assert_array_equal(remote.target_class, remote.predicted_class)
    assert remote.saliency.shape == (6, 12, 12) and remote.model_name == "clf"


def test_explicit_target_class_changes_the_explained_class(client):
    x = _images(3)
    out = client.explain(x, target_class=[0, 1, 2])
    np.testing.assert_array_equal(out.target_class, [0, 1, 2])
    single = client.explain(x, target_class=4)
    np.testing.assert_array_equal(single.target_class, [4, 4, 4])


def test_predict_matches_the_keras_model(served, client):
    model = served[1]
    x = _images(4, seed=3)
    out = client.predict(x)
    np.testing.assert_allclose(out.probabilities, np.asarray(model(x, training=False)), atol=1e-5)
    np.testing.assert_array_equal(out.predicted_class, np.asarray(model(x)).argmax(-1))


@pytest.mark.parametrize(
    ("call", "error", "needle"),
    [
        (lambda c: c.explain(_images(2), target_class=7), InvalidArgumentError, "target_class out of range"),
        (lambda c: c.explain(np.full((1, *SHAPE), np.nan, np.float32)), InvalidArgumentError, "finite"),
        (lambda c: c.predict(_images(1, (10, 10, 1))), InvalidArgumentError, "shape"),
        (lambda c: c.explain(_images(1), signature="explain_nope"), FailedPreconditionError, "explain_nope"),
    ],
    ids=["out_of_range_class", "nan", "wrong_shape", "unknown_signature"],
)
def test_bad_requests_raise_typed_errors_and_the_server_keeps_serving(client, call, error, needle):
    with pytest.raises(error) as info:
        call(client)
    assert needle in str(info.value)
    assert client.predict(_images(1)).logits.shape == (1, 5)


def test_unknown_model_and_version_are_not_found(served):
    server = served[0]
    with ServingClient(f"127.0.0.1:{server.ports.grpc}", "nope", timeout=10.0) as c:
        with pytest.raises(NotFoundError, match="nope"):
            c.predict(_images(1))
    with ServingClient(f"127.0.0.1:{server.ports.grpc}", "clf", version=99, timeout=10.0) as c:
        with pytest.raises(NotFoundError, match="99"):
            c.predict(_images(1))


def test_metadata_and_status_describe_the_export(served, client):
    meta = client.metadata()
    assert {"serving_default", "explain"} <= set(meta.signatures)
    explain = meta.signatures["explain"]
    assert set(explain.inputs) == {"images", "target_class"}
    assert set(explain.outputs) == {"logits", "probabilities", "predicted_class", "target_class", "saliency"}
    (status,) = client.status()
    assert status.state == "AVAILABLE" and status.version == int(served[3].name)


def test_a_new_version_exported_while_a_client_loops_gives_zero_failed_requests(served):
    server, _, base, first = served
    failures: list[BaseException] = []
    versions: set[int] = set()
    stop = threading.Event()

    def loop() -> None:
        with ServingClient(f"127.0.0.1:{server.ports.grpc}", "clf", timeout=30.0) as c:
            while not stop.is_set():
                try:
                    versions.add(c.explain(_images(2)).model_version)
                except BaseException as error:  # any failure counts
                    failures.append(error)

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        time.sleep(0.5)
        new = export_model(_model(2), base, config=ExportConfig(name="clf", warmup_batch_sizes=(1,)))
        deadline = time.monotonic() + 60
        while int(new.name) not in versions and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join(timeout=60)
    assert failures == []
    assert {int(first.name), int(new.name)} <= versions


def test_a_batch_of_maps_larger_than_grpc_default_4mib_round_trips(tmp_path):
    # 48 maps of 160x160 float32 = 4.9 MB in each direction: above gRPC's 4 MiB default.
    size = (160, 160, 1)
    keras.utils.set_random_seed(3)
    inputs = keras.Input(size)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    base = tmp_path / "big"
    export_model(model, base, config=ExportConfig(warmup_batch_sizes=(1,)))
    options = ServerOptions.single_model("big", base, port=0, rest_api_port=0, file_system_poll_wait_seconds=0)
    with ModelServer(options) as server, ServingClient(f"127.0.0.1:{server.ports.grpc}", "big", timeout=60.0) as c:
        out = c.explain(_images(48, size))
    assert out.saliency.shape == (48, 160, 160)
    assert np.isfinite(out.saliency).all()
