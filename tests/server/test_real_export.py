"""Serve a real export from the lead's ``exporter.export_model`` through the bundled server."""

from __future__ import annotations

import json
import urllib.request

import grpc
import numpy as np
import pytest

from tests.server.helpers import MAX_MSG, outputs, predict_request

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SHAPE = (6, 6, 2)


@pytest.fixture(scope="module")
def real_export_server(tmp_path_factory):
    keras = pytest.importorskip("keras")
    exporter = pytest.importorskip("exporter")
    from model_server import ModelServer, ServerOptions

    keras.utils.set_random_seed(7)
    inputs = keras.Input(SHAPE)
    x = keras.layers.Conv2D(3, 3, activation="tanh")(inputs)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(x))
    base = tmp_path_factory.mktemp("real") / "clf"
    version_dir = exporter.export_model(model, base)
    assert version_dir.parent == base and version_dir.name.isdigit()
    with ModelServer(ServerOptions.single_model("clf", base, port=0, rest_api_port=0,
                                                file_system_poll_wait_seconds=0)) as server:
        yield server, model, int(version_dir.name)


def test_real_export_serves_explain_with_the_default_target(real_export_server):
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    server, model, version = real_export_server
    x = np.random.default_rng(0).random((3, *SHAPE), dtype=np.float32)
    with grpc.insecure_channel(
        f"127.0.0.1:{server.ports.grpc}",
        options=[("grpc.max_send_message_length", MAX_MSG), ("grpc.max_receive_message_length", MAX_MSG)],
    ) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(predict_request("clf", "explain", images=x), timeout=20)
        out = outputs(response)
        assert response.model_spec.version.value == version
        np.testing.assert_array_equal(out["target_class"], out["predicted_class"])
        np.testing.assert_allclose(out["probabilities"], np.asarray(model(x)), rtol=1e-4, atol=1e-6)
        assert out["saliency"].shape == (3, 6, 6)
        assert 0.0 <= out["saliency"].min() and out["saliency"].max() <= 1.0
        bad = predict_request("clf", "explain", images=x, target_class=np.array([4], np.int32))
        with pytest.raises(grpc.RpcError) as info:
            stub.Predict(bad, timeout=20)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        nan = predict_request("clf", images=np.full((1, *SHAPE), np.nan, np.float32))
        with pytest.raises(grpc.RpcError) as info:
            stub.Predict(nan, timeout=20)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_real_export_status_over_rest(real_export_server):
    server, _, version = real_export_server
    with urllib.request.urlopen(f"http://127.0.0.1:{server.ports.rest}/v1/models/clf", timeout=10) as resp:
        body = json.loads(resp.read())
    assert body["model_version_status"] == [
        {"version": str(version), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    ]
