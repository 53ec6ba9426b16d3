"""Server-side request batching (``--enable_batching``): same answers, TF Serving's errors."""

from __future__ import annotations

import threading

import grpc
import numpy as np
import pytest

from tests.server.helpers import concurrently, images, outputs, predict_request, wait_for
from tests.server.server_test_models import expected_logits

# ---- the scheduler alone, with a fake session --------------------------------------------


class _FakeSession:
    """Doubles its input; refuses NaN like CheckNumerics; records each batch's size."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.sizes: list[int] = []
        self.gate = gate
        self.lock = threading.Lock()

    def __call__(self, fetches, feeds):
        from model_server._errors import invalid_argument

        if self.gate is not None:
            self.gate.wait(10)
        x = feeds["x"]
        with self.lock:
            self.sizes.append(len(x))
        if np.isnan(x).any():
            raise invalid_argument("x : Tensor had NaN values")
        return [x * 2, np.full(len(x), len(x))]


def _scheduler(**kw):
    from model_server import BatchingOptions
    from model_server._batching import BatchScheduler

    return BatchScheduler(BatchingOptions(**kw))


def _submit_all(scheduler, session, arrays):
    return concurrently(lambda x: scheduler.run("servable", ["y", "n"], {"x": x}, session), arrays, timeout=30)


def test_concurrent_requests_are_run_as_one_batch_and_split_back():
    scheduler = _scheduler(max_batch_size=32, batch_timeout_micros=200_000, num_batch_threads=1)
    session = _FakeSession()
    arrays = [np.full((k, 3), float(i), np.float32) for i, k in enumerate([1, 2, 3, 1, 2])]
    try:
        results = _submit_all(scheduler, session, arrays)
        queues_left = dict(scheduler._queues)
    finally:
        scheduler.stop()
    assert queues_left == {}  # empty queues are dropped: none keeps an unloaded version alive
    for x, (y, n) in zip(arrays, results, strict=True):
        np.testing.assert_array_equal(y, x * 2)
        assert len(n) == len(x)
    assert sum(session.sizes) == 9 and len(session.sizes) < 5  # fewer runs than requests


def test_batches_are_padded_to_the_next_allowed_size():
    scheduler = _scheduler(
        max_batch_size=8, batch_timeout_micros=200_000, num_batch_threads=1, allowed_batch_sizes=(4, 8)
    )
    session = _FakeSession()
    try:
        (y, n), = _submit_all(scheduler, session, [np.ones((3, 2), np.float32)])
    finally:
        scheduler.stop()
    assert session.sizes == [4] and y.shape == (3, 2) and n.tolist() == [4, 4, 4]


def test_one_bad_request_does_not_fail_the_others_in_its_batch():
    scheduler = _scheduler(max_batch_size=32, batch_timeout_micros=200_000, num_batch_threads=1)
    session = _FakeSession()
    arrays = [np.ones((2, 1), np.float32), np.full((1, 1), np.nan, np.float32), np.zeros((1, 1), np.float32)]
    try:
        good1, bad, good2 = _submit_all(scheduler, session, arrays)
    finally:
        scheduler.stop()
    np.testing.assert_array_equal(good1[0], arrays[0] * 2)
    np.testing.assert_array_equal(good2[0], arrays[2] * 2)
    assert bad.code == grpc.StatusCode.INVALID_ARGUMENT and "NaN" in bad.message


def test_a_full_queue_answers_unavailable_like_tf_serving():
    gate = threading.Event()
    scheduler = _scheduler(max_batch_size=1, max_enqueued_batches=1, num_batch_threads=1)
    session = _FakeSession(gate)
    x = np.ones((1, 1), np.float32)
    first = threading.Thread(target=scheduler.run, args=("s", ["y", "n"], {"x": x}, session))
    second = threading.Thread(target=scheduler.run, args=("s", ["y", "n"], {"x": x}, session))
    first.start()
    assert wait_for(lambda: scheduler.tasks_run == 1, timeout=10)  # running, blocked on the gate
    second.start()
    queued = lambda: sum(len(q.batches) for q in scheduler._queues.values()) == 1  # noqa: E731
    assert wait_for(queued, timeout=10)  # the one batch the queue may hold
    try:
        with pytest.raises(Exception) as info:
            scheduler.run("s", ["y", "n"], {"x": x}, session)
        assert info.value.code == grpc.StatusCode.UNAVAILABLE
        assert "queue to which this task was submitted is full" in info.value.message
    finally:
        gate.set()
        first.join(10)
        second.join(10)
        scheduler.stop()


@pytest.mark.parametrize(
    "feeds, message",
    [
        ({"x": np.ones((2, 1)), "t": np.ones(1)}, "Batching session Run() input tensors must have equal 0th-dimension size"),
        ({"x": np.float32(1)}, "must have at least one dimension"),
        ({"x": np.ones((9, 1))}, "Task size 9 is larger than maximum input batch size 8"),
    ],
)
def test_unbatchable_requests_are_invalid_argument(feeds, message):
    scheduler = _scheduler(max_batch_size=8)
    try:
        with pytest.raises(Exception) as info:
            scheduler.run("s", ["y"], feeds, _FakeSession())
    finally:
        scheduler.stop()
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT and message in info.value.message


def test_batching_parameters_parse_like_tf_serving():
    from pathlib import Path

    from model_server import BatchingOptions

    config = Path(__file__).parents[2] / "configs" / "batching.config"
    options = BatchingOptions.from_text(config.read_text(), source=str(config))
    assert (options.max_batch_size, options.batch_timeout_micros, options.num_batch_threads) == (64, 2000, 2)
    assert options.max_enqueued_batches == 100 and options.allowed_batch_sizes == (8, 16, 32, 64)
    with pytest.raises(ValueError, match="The last entry in allowed_batch_sizes must match max_batch_size"):
        BatchingOptions.from_text("max_batch_size { value: 8 } allowed_batch_sizes: 4")
    with pytest.raises(ValueError, match='has no field named "max_batch"'):
        BatchingOptions.from_text("max_batch { value: 8 }")


def test_cli_flags_enable_batching(tmp_path):
    from model_server.cli import build_parser, options_from_args

    params = tmp_path / "batching.config"
    params.write_text("max_batch_size { value: 4 } batch_timeout_micros { value: 10 }")
    args = build_parser().parse_args(
        ["--model_base_path=/m", "--enable_batching=true", f"--batching_parameters_file={params}"]
    )
    batching = options_from_args(args).batching
    assert (batching.max_batch_size, batching.batch_timeout_micros) == (4, 10)
    assert options_from_args(build_parser().parse_args(["--model_base_path=/m"])).batching is None
    with pytest.raises(ValueError, match="only used with --enable_batching=true"):
        options_from_args(build_parser().parse_args(["--model_base_path=/m", f"--batching_parameters_file={params}"]))


# ---- through the real server --------------------------------------------------------------


@pytest.fixture(scope="module")
def batching_server(export_pool, tmp_path_factory):
    from model_server import BatchingOptions, ModelServer, ServerOptions
    from tests.server.helpers import install

    base = tmp_path_factory.mktemp("batching") / "m"
    install(export_pool["scale1"], base / "1")
    options = ServerOptions.single_model(
        "m", base, port=0, rest_api_port=0, file_system_poll_wait_seconds=0,
        batching=BatchingOptions(max_batch_size=16, batch_timeout_micros=50_000, num_batch_threads=2),
    )  # fmt: skip
    with ModelServer(options) as server:
        yield server


@pytest.mark.integration
@pytest.mark.e2e
def test_batched_answers_equal_unbatched_answers_for_every_request(batching_server):
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from model_server._predict import run_predict

    requests = []
    for i in range(24):
        x = images(1 + i % 3, seed=i)
        if i % 2:
            target = np.array([(i + j) % 3 for j in range(len(x))], np.int32)
            requests.append(predict_request(signature="explain", images=x, target_class=target))
        else:
            requests.append(predict_request(images=x))
    with grpc.insecure_channel(f"127.0.0.1:{batching_server.ports.grpc}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        answers = concurrently(lambda request: outputs(stub.Predict(request, timeout=30)), requests, timeout=60)
    assert not [a for a in answers if not isinstance(a, dict)], answers
    batcher = batching_server.core.batcher
    assert batcher.batches_run < batcher.tasks_run, "nothing was batched"
    with batching_server.manager.handle("m") as servable:
        for request, got in zip(requests, answers, strict=True):
            _, alone = run_predict(servable, request.model_spec.signature_name, request.inputs)
            assert got.keys() == alone.keys()
            for key in got:
                np.testing.assert_allclose(got[key], alone[key], rtol=1e-6, atol=1e-6, err_msg=key)
            x = np.frombuffer(request.inputs["images"].tensor_content, np.float32).reshape(-1, 4, 4, 1)
            np.testing.assert_allclose(got["logits"], expected_logits(x, 1.0), rtol=1e-5, atol=1e-5)


@pytest.mark.integration
@pytest.mark.e2e
def test_mismatched_dim0_is_refused_by_the_batching_server(batching_server):
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{batching_server.ports.grpc}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        bad = [
            predict_request(signature="explain", images=images(2), target_class=np.array([0], np.int32)),
            predict_request(signature="explain", images=images(2)),  # the [1] default, as TF Serving
        ]
        for request in bad:
            with pytest.raises(grpc.RpcError) as info:
                stub.Predict(request, timeout=10)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert info.value.details() == (
                "Batching session Run() input tensors must have equal 0th-dimension size"
            )
        response = stub.Predict(predict_request(images=images(2)), timeout=10)
        assert outputs(response)["logits"].shape == (2, 3)


@pytest.mark.integration
@pytest.mark.e2e
def test_a_new_version_is_batched_with_its_own_session(export_pool, installer, tmp_path):
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from model_server import BatchingOptions, ModelServer, ServerOptions
    from tests.server.helpers import wait_for

    base = tmp_path / "m"
    installer(export_pool["scale1"], base / "1")
    options = ServerOptions.single_model(
        "m", base, port=0, rest_api_port=None, file_system_poll_wait_seconds=0.1,
        batching=BatchingOptions(max_batch_size=8, batch_timeout_micros=1000, num_batch_threads=1),
    )  # fmt: skip
    x = images(2)
    with ModelServer(options) as server, grpc.insecure_channel(f"127.0.0.1:{server.ports.grpc}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        first = stub.Predict(predict_request(images=x), timeout=10)
        np.testing.assert_allclose(outputs(first)["logits"], expected_logits(x, 1.0), rtol=1e-5, atol=1e-5)
        installer(export_pool["scale2"], base / "2")
        assert wait_for(lambda: server.manager.available_versions() == {"m": [2]}, timeout=30)
        second = stub.Predict(predict_request(images=x), timeout=10)
        assert second.model_spec.version.value == 2
        np.testing.assert_allclose(outputs(second)["logits"], expected_logits(x, 2.0), rtol=1e-5, atol=1e-5)
