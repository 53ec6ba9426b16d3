"""Per-request parameters through the bundled server with ``--enable_batching``, over gRPC and REST.

Requests with different `steps`/`samples`/`noise`/`baseline` are merged into one batch by the
server's batcher; each answer must equal the same request run alone (unbatched), and the
client's keyword arguments must send what the signature takes.
"""

from __future__ import annotations

import json
import urllib.request

import grpc
import numpy as np
import pytest

from tests.server.helpers import concurrently, outputs, predict_request

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

IG = "explain_integrated_gradients"
SG = "explain_smoothgrad"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from exporter import ExportConfig
    from exporter._config import MethodsConfig
    from exporter.methods import IntegratedGradientsParams, SmoothGradParams
    from model_server import BatchingOptions, ModelServer, ServerOptions
    from tests.exporter.helpers import export, logits_model

    methods = MethodsConfig(
        enabled=("smoothgrad", "integrated_gradients"),
        internal_batch=4,
        params=[IntegratedGradientsParams(steps=6, max_steps=16, max_samples=4), SmoothGradParams(samples=2, max_samples=6)],
    )
    base = tmp_path_factory.mktemp("request_params_server") / "m"
    export(logits_model(), base, ExportConfig(name="m", methods=methods))
    # A long timeout, so concurrent requests wait for each other and merge.
    options = ServerOptions.single_model(
        "m", base, port=0, rest_api_port=0, file_system_poll_wait_seconds=0,
        batching=BatchingOptions(max_batch_size=32, batch_timeout_micros=400_000, num_batch_threads=1),
    )  # fmt: skip
    with ModelServer(options) as running:
        yield running


@pytest.fixture(scope="module")
def stub(server):
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{server.ports.grpc}") as channel:
        yield prediction_service_pb2_grpc.PredictionServiceStub(channel)


def _images(batch: int, seed: int) -> np.ndarray:
    from tests.exporter.helpers import INPUT_SHAPE

    return np.random.default_rng(seed).random((batch, *INPUT_SHAPE), dtype=np.float32)


def _concurrently(stub, requests) -> list:
    # An exception a call raised stands in its answer: the test fails on it below.
    return concurrently(lambda request: outputs(stub.Predict(request, timeout=60)), requests, timeout=120)


def _alone(server, request) -> dict[str, np.ndarray]:
    from model_server._predict import run_predict

    with server.manager.handle("m") as servable:
        return run_predict(servable, request.model_spec.signature_name, request.inputs)[1]


def test_mixed_values_in_one_batch_each_equal_their_unbatched_answer(server, stub):
    from tests.exporter.helpers import INPUT_SHAPE

    rng = np.random.default_rng(7)
    requests = []
    for i in range(4):  # IG: each request its own steps, samples, noise and two baselines per image
        batch = 1 + i % 2
        requests.append(predict_request(
            signature=IG, images=_images(batch, i), target_class=np.full(batch, i % 4, np.int32),
            steps=np.array([2 + 3 * i + j for j in range(batch)], np.int32),
            samples=np.array([1 + (i + j) % 3 for j in range(batch)], np.int32),
            noise=np.array([0.1 * ((i + j) % 3) for j in range(batch)], np.float32),
            baseline=rng.random((batch, 2, *INPUT_SHAPE), dtype=np.float32),
        ))  # fmt: skip
    for i in range(3):  # SmoothGrad: samples and noise per image
        requests.append(predict_request(
            signature=SG, images=_images(2, 10 + i), target_class=np.full(2, -1, np.int32),
            samples=np.array([1 + i, 6 - i], np.int32), noise=np.array([0.05 * i, 0.2], np.float32),
        ))  # fmt: skip
    batcher = server.core.batcher
    tasks, batches = batcher.tasks_run, batcher.batches_run
    answers = _concurrently(stub, requests)
    assert not [a for a in answers if isinstance(a, Exception)], answers
    # 7 requests in at most 2 queues (one per signature): merged into fewer runs than requests.
    assert batcher.tasks_run - tasks == 7 and batcher.batches_run - batches <= 4, "nothing was batched"
    for request, got in zip(requests, answers, strict=True):
        alone = _alone(server, request)
        assert got.keys() == alone.keys()
        np.testing.assert_allclose(got["saliency"], alone["saliency"], rtol=0, atol=1e-5)
        for key in ("attributions", "approximation_error", "logits"):
            if key in got:
                np.testing.assert_allclose(got[key], alone[key], rtol=1e-5, atol=1e-6, err_msg=key)
        np.testing.assert_array_equal(got["target_class"], alone["target_class"])


def test_requests_with_different_baseline_counts_queue_apart_and_all_succeed(server, stub):
    from tests.exporter.helpers import INPUT_SHAPE

    # With batching every input goes with one value per image (the omitted ones' length-1
    # defaults would not concatenate), as the client sends them.
    requests = [
        predict_request(signature=IG, images=_images(2, 20), target_class=np.full(2, -1, np.int32),
                        steps=np.array([3, 5], np.int32), samples=np.ones(2, np.int32), noise=np.zeros(2, np.float32),
                        baseline=np.zeros((2, 0, *INPUT_SHAPE), np.float32)),
        predict_request(signature=IG, images=_images(1, 21), target_class=np.full(1, -1, np.int32),
                        steps=np.array([4], np.int32), samples=np.ones(1, np.int32), noise=np.zeros(1, np.float32),
                        baseline=np.full((1, 3, *INPUT_SHAPE), 0.5, np.float32)),
    ]  # fmt: skip
    answers = _concurrently(stub, requests)
    for request, got in zip(requests, answers, strict=True):
        assert not isinstance(got, Exception), got
        np.testing.assert_allclose(got["attributions"], _alone(server, request)["attributions"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "inputs, message",
    [
        ({"steps": np.array([0], np.int32)}, "steps out of range: expected 1 <= steps <= 16 (config [methods.integrated_gradients] max_steps); received] [0]"),
        ({"samples": np.array([5], np.int32)}, "samples out of range: expected 1 <= samples <= 4 (config [methods.integrated_gradients] max_samples); received] [5]"),
        ({"noise": np.array([-1.0], np.float32)}, "noise out of range: expected 0 <= noise (finite); received] [-1]"),
    ],
)
def test_out_of_bounds_values_are_invalid_argument_and_the_server_keeps_serving(stub, inputs, message):
    request = predict_request(signature=IG, images=_images(1, 30), target_class=np.array([-1], np.int32), **inputs)
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(request, timeout=60)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in info.value.details()
    ok = outputs(stub.Predict(predict_request(signature=IG, images=_images(1, 30)), timeout=60))
    assert np.isfinite(ok["saliency"]).all()


def test_old_requests_without_the_inputs_get_the_export_defaults(server, stub):
    from tests.exporter.helpers import INPUT_SHAPE

    def explicit(batch: int, steps: int = 6):
        return predict_request(
            signature=IG, images=_images(batch, 40), target_class=np.full(batch, -1, np.int32),
            steps=np.full(batch, steps, np.int32), samples=np.ones(batch, np.int32), noise=np.zeros(batch, np.float32),
            baseline=np.zeros((batch, 0, *INPUT_SHAPE), np.float32),
        )  # fmt: skip

    # An old client's request (images + target_class) of one image, through the batching server.
    old_one = outputs(stub.Predict(predict_request(signature=IG, images=_images(1, 40), target_class=np.full(1, -1, np.int32)), timeout=60))
    np.testing.assert_allclose(old_one["attributions"], outputs(stub.Predict(explicit(1), timeout=60))["attributions"], rtol=1e-6, atol=1e-7)
    # Unbatched, any batch: the defaults broadcast in the graph.
    old = _alone(server, predict_request(signature=IG, images=_images(3, 40), target_class=np.full(3, -1, np.int32)))
    np.testing.assert_allclose(old["attributions"], _alone(server, explicit(3))["attributions"], rtol=1e-6, atol=1e-7)
    assert np.abs(_alone(server, explicit(3, steps=12))["attributions"] - old["attributions"]).max() > 1e-6
    # Batched, a request of several images that omits them meets TF Serving's rule (the defaults
    # have dim 0 = 1), as one omitting target_class does: docs/production.md#batching-and-target_class.
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(predict_request(signature=IG, images=_images(3, 40), target_class=np.full(3, -1, np.int32)), timeout=60)
    assert info.value.details() == "Batching session Run() input tensors must have equal 0th-dimension size"


def test_client_keywords_send_per_image_values_and_refuse_unknown_inputs(server):
    from serving_client import ServingClient
    from tests.exporter.helpers import INPUT_SHAPE

    x = _images(2, 50)
    baseline = np.full(INPUT_SHAPE, 0.3, np.float32)
    with ServingClient(f"127.0.0.1:{server.ports.grpc}", "m") as client:
        info = client.metadata().signatures[IG]
        assert info.request_inputs == ("steps", "samples", "noise", "baseline")
        assert info.defaults["steps"].tolist() == [6]
        got = client.explain(x, method="integrated_gradients", steps=[3, 9], samples=2, noise=0.1, baseline=baseline)
        want = _alone(server, predict_request(
            signature=IG, images=x, target_class=np.full(2, -1, np.int32), steps=np.array([3, 9], np.int32),
            samples=np.full(2, 2, np.int32), noise=np.full(2, 0.1, np.float32),
            baseline=np.broadcast_to(baseline, (2, 1, *INPUT_SHAPE)).copy(),
        ))  # fmt: skip
        np.testing.assert_allclose(got.attributions, want["attributions"], rtol=1e-5, atol=1e-7)
        default = client.explain(x, method="integrated_gradients")
        np.testing.assert_allclose(default.attributions, _alone(server, predict_request(signature=IG, images=x))["attributions"], rtol=1e-5, atol=1e-7)
        with pytest.raises(ValueError, match=r"Method 'smoothgrad' \(signature 'explain_smoothgrad'\) takes no steps, baseline; its per-request inputs are samples, noise"):
            client.explain(x, method="smoothgrad", steps=3, baseline=baseline)
        with pytest.raises(ValueError, match="Method 'vanilla' .* takes no samples; its per-request inputs are none"):
            client.explain(x, samples=4)


def test_rest_takes_the_inputs_in_row_and_columnar_formats(server):
    from tests.exporter.helpers import INPUT_SHAPE

    x = _images(2, 60)
    baseline = np.random.default_rng(8).random((2, 1, *INPUT_SHAPE), dtype=np.float32)
    values = {"steps": [2, 7], "samples": [1, 2], "noise": [0.0, 0.1], "baseline": baseline}
    url = f"http://127.0.0.1:{server.ports.rest}/v1/models/m:predict"

    def post(body: dict) -> dict:
        request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    want = _alone(server, predict_request(
        signature=IG, images=x, target_class=np.full(2, -1, np.int32), steps=np.array([2, 7], np.int32),
        samples=np.array([1, 2], np.int32), noise=np.array([0.0, 0.1], np.float32), baseline=baseline,
    ))  # fmt: skip
    # Every input with one value per image: the server batches REST requests too.
    columnar = post({"signature_name": IG, "inputs": {
        "images": x.tolist(), "target_class": [-1, -1], **{k: np.asarray(v).tolist() for k, v in values.items()}
    }})["outputs"]  # fmt: skip
    np.testing.assert_allclose(columnar["attributions"], want["attributions"], rtol=1e-5, atol=1e-7)
    instances = [
        {"images": x[i].tolist(), "target_class": -1, **{k: np.asarray(v)[i].tolist() for k, v in values.items()}}
        for i in range(2)
    ]
    rows = post({"signature_name": IG, "instances": instances})["predictions"]
    np.testing.assert_allclose([r["attributions"] for r in rows], want["attributions"], rtol=1e-5, atol=1e-7)
