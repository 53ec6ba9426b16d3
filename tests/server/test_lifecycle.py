"""Version lifecycle: hot swap under load, corrupt and deleted versions, warmup, shutdown."""

from __future__ import annotations

import logging
import shutil
import threading

import grpc
import numpy as np
import pytest

from tests.server.helpers import MAX_MSG, images, predict_request, traffic, wait_for


def _start(base, **kw):
    from model_server import ModelServer, ServerOptions

    options = ServerOptions.single_model(
        "m", base, port=0, rest_api_port=None, file_system_poll_wait_seconds=0.1, **kw
    )
    server = ModelServer(options)
    server.start()
    return server


def _stub(server):
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    channel = grpc.insecure_channel(
        f"127.0.0.1:{server.ports.grpc}",
        options=[("grpc.max_send_message_length", MAX_MSG), ("grpc.max_receive_message_length", MAX_MSG)],
    )
    return channel, prediction_service_pb2_grpc.PredictionServiceStub(channel)


def _states(server, name="m"):
    return {s.version: s.state.name for s in server.manager.status(name)}


@pytest.mark.integration
@pytest.mark.e2e
def test_a_new_version_written_under_load_gives_zero_failed_requests(export_pool, installer, tmp_path):
    base = tmp_path / "m"
    installer(export_pool["scale1"], base / "1")
    server = _start(base)
    try:
        with traffic(server, batch=4) as (seen, failures):
            assert wait_for(lambda: len(seen) > 20, timeout=20)
            installer(export_pool["scale2"], base / "2")
            assert wait_for(lambda: 2 in seen[-5:], timeout=30), "traffic never moved to version 2"
            assert wait_for(lambda: _states(server).get(1) == "END", timeout=30)
            n = len(seen)
            assert wait_for(lambda: len(seen) > n + 20, timeout=20)
    finally:
        server.stop()
    assert failures == []
    assert seen[0] == 1 and seen[-1] == 2
    assert _states(server) == {1: "END", 2: "END"}  # all unloaded by stop()


@pytest.mark.integration
@pytest.mark.e2e
def test_a_corrupt_version_is_refused_and_the_previous_keeps_serving(export_pool, installer, tmp_path):
    base = tmp_path / "m"
    installer(export_pool["scale1"], base / "1")
    server = _start(base)
    channel, stub = _stub(server)
    try:
        broken = tmp_path / "broken"
        shutil.copytree(export_pool["scale2"], broken)
        pb = broken / "saved_model.pb"
        pb.write_bytes(pb.read_bytes()[:100])  # truncated
        installer(broken, base / "2")
        assert wait_for(lambda: _states(server).get(2) == "END", timeout=30)
        (v1, v2) = server.manager.status("m")
        assert (v1.version, v1.state.name, v1.error) == (1, "AVAILABLE", None)
        assert v2.error is not None and v2.error.message
        assert v2.error.code != grpc.StatusCode.OK
        response = stub.Predict(predict_request(images=images(1)), timeout=10)
        assert response.model_spec.version.value == 1
        # The failure is visible over gRPC GetModelStatus too.
        from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

        req = get_model_status_pb2.GetModelStatusRequest()
        req.model_spec.name = "m"
        req.model_spec.version.value = 2
        (status,) = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(req, timeout=10).model_version_status
        assert status.state == get_model_status_pb2.ModelVersionStatus.END
        assert status.status.error_code != 0 and status.status.error_message == v2.error.message
    finally:
        channel.close()
        server.stop()


@pytest.mark.integration
@pytest.mark.e2e
def test_a_deleted_version_is_unloaded(export_pool, installer, tmp_path):
    from model_server import ModelConfig, ModelServer, ServerOptions, VersionPolicy

    base = tmp_path / "m"
    installer(export_pool["scale1"], base / "1")
    installer(export_pool["scale2"], base / "2")
    options = ServerOptions(
        models=(ModelConfig("m", base, VersionPolicy("all")),),
        port=0,
        rest_api_port=None,
        file_system_poll_wait_seconds=0.1,
    )
    with ModelServer(options) as server:
        assert _states(server) == {1: "AVAILABLE", 2: "AVAILABLE"}
        shutil.rmtree(base / "2")
        assert wait_for(lambda: _states(server).get(2) == "END", timeout=30)
        assert _states(server)[1] == "AVAILABLE"
        channel, stub = _stub(server)
        assert stub.Predict(predict_request(images=images(1)), timeout=10).model_spec.version.value == 1
        channel.close()


@pytest.mark.integration
@pytest.mark.e2e
def test_non_numeric_directories_are_ignored(export_pool, installer, tmp_path):
    base = tmp_path / "m"
    installer(export_pool["scale1"], base / "3")
    shutil.copytree(export_pool["scale2"], base / ".tmp-export-9")
    shutil.copytree(export_pool["scale2"], base / "v10")
    with _start(base) as server:
        assert _states(server) == {3: "AVAILABLE"}


@pytest.mark.integration
@pytest.mark.e2e
def test_warmup_is_replayed_before_available(export_pool, installer, tmp_path, caplog):
    base = tmp_path / "m"
    installer(export_pool["warm3"], base / "1")
    with caplog.at_level(logging.INFO, logger="model_server"):
        server = _start(base)
    try:
        assert _states(server) == {1: "AVAILABLE"}
        assert any("version: 1} (warmup requests replayed: 3)" in r.getMessage() for r in caplog.records)
        # A version whose warmup fails never becomes AVAILABLE; version 1 keeps serving.
        installer(export_pool["badwarmup"], base / "2")
        assert wait_for(lambda: _states(server).get(2) == "END", timeout=30)
        (v2,) = server.manager.status("m", 2)
        assert "warmup request failed" in v2.error.message
        assert 'input "images" expects shape [-1,4,4,1]' in v2.error.message
        assert server.manager.available_versions() == {"m": [1]}
    finally:
        server.stop()


@pytest.mark.integration
@pytest.mark.e2e
def test_initial_load_failure_refuses_to_start(export_pool, installer, tmp_path):
    from model_server import ModelServerError

    base = tmp_path / "m"
    installer(export_pool["badwarmup"], base / "1")
    with pytest.raises(ModelServerError, match="initial model load failed: m: version 1: warmup request failed"):
        _start(base)


def test_close_waits_for_in_flight_requests():
    from model_server._servable import LoadedServable

    class _Session:
        closed = False

        def close(self):
            self.closed = True

    class _MetaGraph:
        signature_def: dict = {}

    session = _Session()
    servable = LoadedServable("m", 1, None, None, session, _MetaGraph())
    servable.acquire()
    done = threading.Event()
    closer = threading.Thread(target=lambda: (servable.close(timeout=10), done.set()))
    closer.start()
    assert not done.wait(0.3) and not session.closed  # still held by the in-flight request
    servable.release()
    assert done.wait(5) and session.closed
    closer.join()
    with pytest.raises(RuntimeError, match="is closed"):
        servable.acquire()


@pytest.mark.integration
@pytest.mark.e2e
def test_in_flight_request_finishes_across_unload(export_pool, installer, tmp_path):
    base = tmp_path / "m"
    installer(export_pool["scale1"], base / "1")
    server = _start(base)
    try:
        with server.manager.handle("m") as servable:
            installer(export_pool["scale2"], base / "2")
            assert wait_for(lambda: _states(server).get(1) == "UNLOADING", timeout=30)
            # The held version still runs while unloading is waiting for us.
            from model_server._predict import run_predict

            _, out = run_predict(servable, "", {"images": images(1)})
            assert out["logits"].shape == (1, 3)
        assert wait_for(lambda: _states(server).get(1) == "END", timeout=30)
        assert np.array_equal(server.manager.available_versions()["m"], [2])
    finally:
        server.stop()


@pytest.mark.integration
@pytest.mark.e2e
def test_deleting_the_latest_version_brings_the_previous_one_back(export_pool, installer, tmp_path):
    base = tmp_path / "m"
    installer(export_pool["scale1"], base / "1")
    installer(export_pool["scale2"], base / "2")
    server = _start(base)  # latest{1}: only version 2 is loaded
    try:
        assert _states(server) == {2: "AVAILABLE"}
        shutil.rmtree(base / "2")
        assert wait_for(lambda: _states(server) == {1: "AVAILABLE", 2: "END"}, timeout=30), _states(server)
        installer(export_pool["scale2"], base / "3")
        assert wait_for(lambda: _states(server) == {1: "END", 2: "END", 3: "AVAILABLE"}, timeout=30)
        # Version 1 came back after an unload: an unloaded (not failed) version reloads.
        shutil.rmtree(base / "3")
        assert wait_for(lambda: _states(server).get(1) == "AVAILABLE", timeout=30), _states(server)
    finally:
        server.stop()
