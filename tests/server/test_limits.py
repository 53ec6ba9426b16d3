"""The bundled server enforces an export's limits before running it, and keeps serving.

An image_bytes export with small limits is served; bombs (small files declaring huge
images), oversize images and oversize batches must be refused with INVALID_ARGUMENT and
the graph's own message, counted in `ModelServer.limit_refusals()`, over gRPC and REST,
and a valid request right after each must succeed. A property test mixes valid and
invalid images and batch sizes (its cases count towards the fuzz total).
"""

from __future__ import annotations

import base64
import http.client
import json
import logging

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.image_bombs import bmp, gif, patch_jpeg_size, png_bomb, webp
from tests.server.helpers import MAX_MSG, outputs, predict_request

SHAPE = (28, 28, 1)
MAX_PIXELS = 64 * 64
MAX_BATCH = {"serving_default": 6, "explain": 5}


def _png(height: int = 28, width: int = 28, seed: int = 0) -> bytes:
    import tensorflow as tf

    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 1), dtype=np.uint8)
    return tf.io.encode_png(pixels).numpy()


def _jpeg() -> bytes:
    import tensorflow as tf

    return tf.io.encode_jpeg(np.full((28, 28, 1), 99, np.uint8)).numpy()


def _strings(items: list[bytes]) -> np.ndarray:
    return np.array(items, dtype=object)


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory):
    keras = pytest.importorskip("keras")
    from exporter import ExportConfig, SaliencyExporter
    from exporter._config import InputConfig, LimitsConfig, MethodsConfig
    from model_server import ModelServer, ServerOptions

    keras.utils.set_random_seed(3)
    inputs = keras.Input(SHAPE)
    x = keras.layers.Conv2D(2, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    config = ExportConfig(
        name="gray",
        input=InputConfig(format="image_bytes", max_pixels=MAX_PIXELS),
        methods=MethodsConfig(enabled=("vanilla",)),
        limits=LimitsConfig(max_batch=MAX_BATCH),
        warmup_batch_sizes=(1,),
    )
    base = tmp_path_factory.mktemp("limited") / "gray"
    SaliencyExporter(model, config).write(base)
    options = ServerOptions.single_model("gray", base, port=0, rest_api_port=0, file_system_poll_wait_seconds=0)
    with ModelServer(options) as server:
        yield server


@pytest.fixture(scope="module")
def stub(limited_server):
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    with grpc.insecure_channel(
        f"127.0.0.1:{limited_server.ports.grpc}",
        options=[("grpc.max_send_message_length", MAX_MSG), ("grpc.max_receive_message_length", MAX_MSG)],
    ) as channel:
        yield prediction_service_pb2_grpc.PredictionServiceStub(channel)


def _request(images: list[bytes], signature: str = "explain"):
    return predict_request("gray", signature, images=_strings(images))


def _good(stub) -> None:
    assert outputs(stub.Predict(_request([_png()]), timeout=20))["saliency"].shape == (1, 28, 28)


def _refused(stub, request) -> str:
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(request, timeout=20)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    return info.value.details()


BOMBS = {
    "png": (lambda: png_bomb(20000, 20000), "max_pixels",
            "image 1 declares 20000×20000 pixels; this export accepts at most 4096 pixels (64×64) (input.max_pixels)"),
    "jpeg": (lambda: patch_jpeg_size(_jpeg(), 30000, 20000), "max_pixels", "image 1 declares 30000×20000 pixels"),
    "bmp": (lambda: bmp(65, -64), "max_pixels", "image 1 declares 65×64 pixels"),
    "oversize": (lambda: _png() + bytes(4 * MAX_PIXELS + 65536), "max_image_bytes",
                 "bytes; this export accepts at most 81920 bytes per image (input.max_image_bytes)"),
}


@pytest.mark.integration
@pytest.mark.e2e
@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_bombs_are_refused_by_the_server_before_the_graph_runs(limited_server, stub, kind, caplog):
    make, limit, message = BOMBS[kind]
    key = ("gray", "explain", limit)
    before = limited_server.limit_refusals().get(key, 0)
    with caplog.at_level(logging.WARNING, logger="model_server"):
        details = _refused(stub, _request([_png(), make()]))
    assert message in details
    assert limited_server.limit_refusals()[key] == before + 1  # the server's check, not the graph's
    if before == 0:  # logged at the 1st, 10th, 100th ... refusal
        assert any("refused gray (version 1) explain" in r.getMessage() for r in caplog.records)
    _good(stub)


@pytest.mark.integration
@pytest.mark.e2e
def test_the_graph_refuses_the_same_bombs_with_the_same_words(limited_server):
    # Bypass the server's check: the exported graph alone (stock TF Serving) says the same.
    from model_server._errors import ServingError
    from model_server._predict import run_predict

    with limited_server.manager.handle("gray", None, None) as servable:
        for kind, (make, _, message) in sorted(BOMBS.items()):
            with pytest.raises(ServingError) as info:
                run_predict(servable, "explain", {"images": _strings([_png(), make()])})
            assert info.value.code_name == "INVALID_ARGUMENT" and message in info.value.message, kind
        with pytest.raises(ServingError, match="batch of 6 exceeds the maximum batch of explain: 5 "):
            run_predict(servable, "explain", {"images": _strings([_png()] * 6)})


@pytest.mark.integration
@pytest.mark.e2e
@pytest.mark.parametrize("signature", sorted(MAX_BATCH))
def test_a_batch_at_the_limit_is_served_and_one_over_is_refused(limited_server, stub, signature):
    maximum = MAX_BATCH[signature]
    assert outputs(stub.Predict(_request([_png()] * maximum, signature), timeout=20))["logits"].shape == (maximum, 3)
    before = limited_server.limit_refusals().get(("gray", signature, "max_batch"), 0)
    details = _refused(stub, _request([_png()] * (maximum + 1), signature))
    assert details == (f"batch of {maximum + 1} exceeds the maximum batch of {signature}: {maximum} "
                       f"(config [limits] {signature})")
    assert limited_server.limit_refusals()[("gray", signature, "max_batch")] == before + 1
    _good(stub)


def _post(port: int, body: dict) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request("POST", "/v1/models/gray:predict", body=json.dumps(body).encode(),
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def _b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode()}


@pytest.mark.integration
@pytest.mark.e2e
def test_rest_gets_the_same_refusals(limited_server):
    port = limited_server.ports.rest
    status, payload = _post(port, {"signature_name": "explain", "inputs": {"images": [_b64(png_bomb(20000, 20000))], "target_class": [-1]}})
    assert status == 400 and "image 0 declares 20000×20000 pixels" in payload["error"], payload
    status, payload = _post(port, {"instances": [{"images": _b64(_png())}] * 7})
    assert status == 400 and "batch of 7 exceeds the maximum batch of serving_default: 6" in payload["error"]
    status, payload = _post(port, {"inputs": {"images": [_b64(_png())] * 6}})
    assert status == 200 and len(payload["outputs"]["logits"]) == 6


def test_declared_size_reads_each_header():
    from model_server._limits import declared_size

    assert declared_size(png_bomb(20000, 123)) == (20000, 123)
    assert declared_size(patch_jpeg_size(_jpeg(), 4000, 3000)) == (4000, 3000)
    # The frame header may follow application segments (EXIF, ICC).
    jpeg = _jpeg()
    with_app = jpeg[:2] + b"\xff\xe1" + (2 + 300).to_bytes(2, "big") + bytes(300) + jpeg[2:]
    assert declared_size(patch_jpeg_size(with_app, 5000, 7)) == (5000, 7)
    assert declared_size(bmp(300, -200)) == (300, 200)
    for unsized in (gif(9000, 9000), webp(9000, 9000), b"", b"\x89PNG", b"\xff\xd8\xff"):
        assert declared_size(unsized) is None


def test_a_version_without_a_report_is_left_to_its_graph(tmp_path):
    from model_server._limits import read_limits

    assert read_limits(tmp_path) is None
    (tmp_path / "assets.extra").mkdir()
    (tmp_path / "assets.extra" / "export_report.json").write_text("{not json")
    assert read_limits(tmp_path) is None
    (tmp_path / "assets.extra" / "export_report.json").write_text(json.dumps({"limits": {"signatures": {"x": {}}}}))
    assert read_limits(tmp_path) is None


def test_an_unreadable_report_is_logged_naming_the_field(tmp_path, caplog):
    from model_server._limits import read_limits
    from tests.client.test_report import _minimal

    report = _minimal()
    report["limits"] = {"signatures": {"explain": {"max_batch": "four"}}}
    (tmp_path / "assets.extra").mkdir()
    (tmp_path / "assets.extra" / "export_report.json").write_text(json.dumps(report))
    with caplog.at_level(logging.WARNING, logger="model_server"):
        assert read_limits(tmp_path) is None
    assert "limits.signatures.explain.max_batch must be an integer; got 'four'" in caplog.text
    # The same report with a valid section gives the graph's limits to the server.
    report["limits"] = {"signatures": {"explain": {"max_batch": 4}}, "input": {"max_pixels": 9, "max_image_bytes": 99}}
    (tmp_path / "assets.extra" / "export_report.json").write_text(json.dumps(report))
    limits = read_limits(tmp_path)
    assert limits is not None
    assert dict(limits.max_batch) == {"explain": 4}
    assert (limits.max_pixels, limits.max_image_bytes) == (9, 99)


# ---- property test: mixed valid and invalid image requests --------------------------------

IMAGE_KINDS = ["valid", "valid", "valid", "png_bomb", "jpeg_bomb", "bmp_bomb", "gif", "webp", "garbage", "oversize"]


@st.composite
def image_requests(draw):
    kinds = draw(st.lists(st.sampled_from(IMAGE_KINDS), min_size=1, max_size=8))
    images = []
    for kind in kinds:
        side = draw(st.integers(1, 70_000))
        if kind == "valid":
            images.append(_png(draw(st.integers(1, 64)), draw(st.integers(1, 64)), seed=draw(st.integers(0, 3))))
        elif kind == "png_bomb":
            images.append(png_bomb(side, draw(st.integers(1, 2**31 - 1))))
        elif kind == "jpeg_bomb":
            images.append(patch_jpeg_size(_jpeg(), min(side, 65535), draw(st.integers(1, 65535))))
        elif kind == "bmp_bomb":
            images.append(bmp(side, draw(st.integers(-(2**31), 2**31 - 1))))
        elif kind == "gif":
            images.append(gif(min(side, 65535), 5))
        elif kind == "webp":
            images.append(webp(min(side, 16384), 5))
        elif kind == "garbage":
            images.append(draw(st.binary(max_size=40)))
        else:
            images.append(_png() + bytes(4 * MAX_PIXELS + 65536))
    return kinds, images, draw(st.sampled_from(sorted(MAX_BATCH)))


def _declared_pixels(data: bytes) -> int:
    from model_server._limits import declared_size

    size = declared_size(data)
    return 0 if size is None else size[0] * size[1]


@pytest.mark.integration
@pytest.mark.e2e
def test_mixed_image_requests_are_answered_or_clearly_refused(limited_server, stub, record_property):
    counts: dict[str, int] = {}

    @settings(max_examples=300, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(case=image_requests())
    def check(case):
        kinds, images, signature = case
        valid = len(images) <= MAX_BATCH[signature] and all(
            kind == "valid" or (kind in ("png_bomb", "jpeg_bomb", "bmp_bomb") and _declared_pixels(data) <= MAX_PIXELS)
            for kind, data in zip(kinds, images, strict=True)
        )
        try:
            response = stub.Predict(_request(images, signature), timeout=20)
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())
            assert not valid or any(k != "valid" for k in kinds), err.details()  # a tiny "bomb" may fail to decode
            assert err.details()
            counts["refused"] = counts.get("refused", 0) + 1
        else:
            assert valid, kinds
            assert outputs(response)["logits"].shape == (len(images), 3)
            counts["ok"] = counts.get("ok", 0) + 1
        _good(stub)

    check()
    record_property("fuzz_cases", sum(counts.values()))
    assert counts.get("ok", 0) > 10 and counts.get("refused", 0) > 100, counts
