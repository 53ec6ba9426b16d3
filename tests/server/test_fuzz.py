"""Bad input, tried systematically: hypothesis against the running server over gRPC and REST.

Every generated request must end in OK or a clear error with the code TF Serving would use —
never INTERNAL/UNKNOWN (a crash in our code), never a hang (every call has a deadline) — and a
good request right after it must succeed. The number of cases tried is reported in the
terminal summary (``fuzz cases tried``, see conftest.py).
"""

from __future__ import annotations

import http.client
import json

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.server.helpers import images, outputs, predict_request
from tests.server.server_test_models import K

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

# Codes a malformed request may get; INTERNAL/UNKNOWN/UNAVAILABLE/DEADLINE_EXCEEDED may not.
CLEAR = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
CLEAR_HTTP = {400, 404, 411, 413}

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # the same cases on every run: a failure here is reproducible
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
# Fields of TensorProto and a strategy for values each can hold.
VAL_FIELDS = {
    "float_val": st.floats(width=32, allow_nan=True, allow_infinity=True),
    "double_val": st.floats(allow_nan=True, allow_infinity=True),
    "int_val": st.integers(*INT32),
    "int64_val": st.integers(*INT64),
    "bool_val": st.booleans(),
    "string_val": st.binary(max_size=16),
    "half_val": st.integers(*INT32),
    "uint32_val": st.integers(0, 2**32 - 1),
    "uint64_val": st.integers(0, 2**64 - 1),
    "scomplex_val": st.floats(width=32),
}


def _dims():
    small = st.integers(0, 5)
    nasty = st.sampled_from([-1, -(2**63), 2**31, 2**40, 2**62, 2**63 - 1])
    return st.one_of(
        st.lists(small, max_size=5),
        st.lists(st.one_of(small, nasty), min_size=1, max_size=5),
        st.lists(st.just(1), min_size=30, max_size=80),  # ranks numpy cannot hold
    )


@st.composite
def tensor_protos(draw):
    from tensorflow.core.framework import tensor_pb2, types_pb2

    proto = tensor_pb2.TensorProto()
    proto.dtype = draw(
        st.one_of(
            st.sampled_from([types_pb2.DT_FLOAT, types_pb2.DT_INT32, types_pb2.DT_STRING, types_pb2.DT_HALF]),
            st.sampled_from(list(types_pb2.DataType.values())),
            st.integers(-3, 400),  # unknown enum values are legal on the wire (open enum)
        )
    )
    if draw(st.booleans()):
        proto.tensor_shape.unknown_rank = draw(st.booleans())
    for size in draw(_dims()):
        proto.tensor_shape.dim.add().size = size
    how = draw(st.sampled_from(["content_exact", "content_random", "vals", "empty"]))
    count = int(np.prod([max(d.size, 0) for d in proto.tensor_shape.dim])) if proto.tensor_shape.dim else 1
    if how == "content_exact" and count * 8 <= 4096:
        proto.tensor_content = draw(st.binary(min_size=count * 4, max_size=count * 4))
    elif how == "content_random":
        proto.tensor_content = draw(st.binary(max_size=300))
    elif how == "vals":
        field = draw(st.sampled_from(sorted(VAL_FIELDS)))
        getattr(proto, field).extend(draw(st.lists(VAL_FIELDS[field], max_size=40)))
    return proto


@st.composite
def malformed_requests(draw):
    from tensorflow_serving.apis import predict_pb2

    req = predict_pb2.PredictRequest()
    req.model_spec.name = draw(st.sampled_from(["m", "m", "m", "solo", "ghost", "../../etc", "", "m/1"]))
    req.model_spec.signature_name = draw(
        st.one_of(st.sampled_from(["", "serving_default", "explain", "nope"]), st.text(max_size=8))
    )
    selector = draw(st.sampled_from(["none", "none", "version", "label", "both"]))
    if selector in ("version", "both"):
        req.model_spec.version.value = draw(st.sampled_from([1, 2, 0, -1, 9, 2**63 - 1]))
    if selector in ("label", "both"):
        req.model_spec.version_label = draw(st.sampled_from(["stable", "canary", "x", "../x"]))
    aliases = draw(
        st.lists(
            st.one_of(st.sampled_from(["images", "target_class", "extra"]), st.text(max_size=6)),
            max_size=3,
            unique=True,
        )
    )
    for alias in aliases:
        if draw(st.integers(0, 3)) == 0:  # a well-formed image tensor, to reach deeper checks
            req.inputs[alias].CopyFrom(predict_request(images=images(draw(st.integers(0, 3)))).inputs["images"])
        else:
            req.inputs[alias].CopyFrom(draw(tensor_protos()))
    req.output_filter.extend(
        draw(st.lists(st.sampled_from(["logits", "saliency", "probabilities", "zzz"]), max_size=3))
    )
    return req


def _good(predict_stub) -> None:
    response = predict_stub.Predict(predict_request(images=images(1)), timeout=10)
    assert outputs(response)["logits"].shape == (1, K)


def _predict_expecting_clear_outcome(predict_stub, request) -> grpc.StatusCode:
    try:
        predict_stub.Predict(request, timeout=10)
    except grpc.RpcError as err:
        assert err.code() in CLEAR, f"{err.code()}: {err.details()}"
        assert err.details(), "an error needs a message"
        return err.code()
    return grpc.StatusCode.OK


def test_malformed_grpc_requests_get_clear_errors(predict_stub, record_property):
    codes: dict[str, int] = {}

    @settings(FUZZ, max_examples=300)
    @given(request=malformed_requests())
    def check(request):
        code = _predict_expecting_clear_outcome(predict_stub, request)
        codes[code.name] = codes.get(code.name, 0) + 1
        _good(predict_stub)

    check()
    record_property("fuzz_cases", sum(codes.values()))
    record_property("fuzz_codes_grpc_malformed", json.dumps(codes, sort_keys=True))
    assert codes.get("INVALID_ARGUMENT", 0) > 10  # the generator does reach the tensor checks


def test_malformed_tensors_for_a_real_input_get_clear_errors(predict_stub, record_property):
    # The request is otherwise right, so every case reaches the tensor decoder.
    n = 0

    @FUZZ
    @given(tensor=tensor_protos(), signature=st.sampled_from(["serving_default", "explain"]))
    def check(tensor, signature):
        nonlocal n
        n += 1
        request = predict_request(signature=signature)
        request.inputs["images"].CopyFrom(tensor)
        _predict_expecting_clear_outcome(predict_stub, request)
        _good(predict_stub)

    check()
    record_property("fuzz_cases", n)


@st.composite
def valid_typed_images(draw):
    from hypothesis.extra import numpy as hnp

    batch = draw(st.integers(0, 4))
    shape = draw(st.sampled_from([(batch, 4, 4, 1)] * 3 + [(batch, 4, 4, 2), (batch, 4, 4), (batch, 3, 4, 1)]))
    x = draw(hnp.arrays(np.float32, shape, elements=st.floats(-1e3, 1e3, width=32)))
    if x.size and draw(st.booleans()):  # one special value somewhere
        special = draw(st.sampled_from([np.nan, np.inf, -np.inf, 3.4e38, -3.4e38, 1e-45]))
        x.flat[draw(st.integers(0, x.size - 1))] = special
    return x


def test_random_shapes_and_values_are_answered_or_refused_per_signature(predict_stub, record_property):
    n = {"ok": 0, "refused": 0}

    @FUZZ
    @given(x=valid_typed_images(), signature=st.sampled_from(["serving_default", "explain"]), target=st.integers(-3, 4))
    def check(x, signature, target):
        inputs = {"images": x}
        if signature == "explain":
            inputs["target_class"] = np.full((x.shape[0],), target, np.int32)
        code = _predict_expecting_clear_outcome(predict_stub, predict_request(signature=signature, **inputs))
        fits = x.shape[1:] == (4, 4, 1)
        finite = bool(np.isfinite(x).all())
        in_range = signature != "explain" or -1 <= target < K or x.shape[0] == 0
        if fits and finite and in_range:
            assert code == grpc.StatusCode.OK
        else:
            assert code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT)
            assert fits or code == grpc.StatusCode.INVALID_ARGUMENT
        n["ok" if code == grpc.StatusCode.OK else "refused"] += 1
        _good(predict_stub)

    check()
    record_property("fuzz_cases", sum(n.values()))
    assert n["ok"] > 0 and n["refused"] > 0


# ---- oversized gRPC messages ---------------------------------------------------------------


@pytest.fixture(scope="module")
def small_message_server(export_pool, tmp_path_factory):
    from model_server import ModelServer, ServerOptions
    from tests.server.helpers import install

    base = tmp_path_factory.mktemp("small_msg") / "m"
    install(export_pool["scale1"], base / "1")
    options = ServerOptions.single_model(
        "m", base, port=0, rest_api_port=0, file_system_poll_wait_seconds=0, max_message_bytes=64 * 1024
    )
    with ModelServer(options) as server:
        yield server


def test_oversized_grpc_messages_are_resource_exhausted(small_message_server, record_property):
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from tests.server.helpers import MAX_MSG

    n = 0
    with grpc.insecure_channel(
        f"127.0.0.1:{small_message_server.ports.grpc}",
        options=[("grpc.max_send_message_length", MAX_MSG), ("grpc.max_receive_message_length", MAX_MSG)],
    ) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

        @settings(FUZZ, max_examples=30)
        @given(batch=st.integers(1, 3000))
        def check(batch):
            nonlocal n
            n += 1
            request = predict_request(images=np.zeros((batch, 4, 4, 1), np.float32))
            code = _predict_expecting_clear_outcome(stub, request)
            if request.ByteSize() > 64 * 1024:
                assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
            else:
                assert code == grpc.StatusCode.OK
            _good(stub)

        check()
    record_property("fuzz_cases", n)


# ---- REST ----------------------------------------------------------------------------------


def _post(port: int, path: str, body: bytes, headers: dict | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    return resp.status, json.loads(raw)


def _json_values():
    leaf = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False),
        st.text(max_size=5),
        st.fixed_dictionaries({"b64": st.text(max_size=8)}),
    )
    return st.recursive(
        leaf,
        lambda children: st.one_of(
            st.lists(children, max_size=5), st.dictionaries(st.text(max_size=5), children, max_size=3)
        ),
        max_leaves=40,
    )


@st.composite
def rest_bodies(draw):
    kind = draw(st.sampled_from(["bytes", "json", "shaped", "deep"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "deep":  # nesting deeper than any parser recursion limit
        depth = draw(st.integers(50, 200_000))
        return b"[" * depth + b"0" + b"]" * depth
    if kind == "json":
        return json.dumps(draw(_json_values())).encode()
    doc: dict = {}
    key = draw(st.sampled_from(["instances", "inputs", "both", "none"]))
    value = draw(
        st.one_of(
            _json_values(),
            st.just(images(2).tolist()),
            st.just([{"images": images(1)[0].tolist(), "target_class": 1}]),
            st.just({"images": images(1).tolist(), "target_class": [7]}),
        )
    )
    if key in ("instances", "both"):
        doc["instances"] = value
    if key in ("inputs", "both"):
        doc["inputs"] = value
    if draw(st.booleans()):
        doc["signature_name"] = draw(st.one_of(st.sampled_from(["explain", "nope", ""]), _json_values()))
    return json.dumps(doc).encode()


def test_malformed_rest_bodies_get_clear_errors(labelled_server, record_property):
    port = labelled_server.ports.rest
    statuses: dict[int, int] = {}

    @FUZZ
    @given(
        body=rest_bodies(),
        path=st.sampled_from(
            ["/v1/models/m:predict", "/v1/models/m/versions/1:predict", "/v1/models/m/labels/canary:predict",
             "/v1/models/..%2F..%2Fetc:predict", "/v1/models/m:classify"]
        ),
    )
    def check(body, path):
        status, payload = _post(port, path, body)
        statuses[status] = statuses.get(status, 0) + 1
        assert status == 200 or status in CLEAR_HTTP | {501}, (status, payload)
        assert ("error" in payload) == (status != 200)
        good_status, good = _post(port, "/v1/models/m:predict", json.dumps({"instances": images(1).tolist()}).encode())
        assert good_status == 200 and len(good["predictions"]) == 1

    check()
    record_property("fuzz_cases", sum(statuses.values()))
    assert statuses.get(400, 0) > 10


def test_huge_rest_bodies_are_refused_before_they_are_read(labelled_server, record_property):
    # Declared lengths over the limit get 413 without the server reading (or buffering) a byte.
    port = labelled_server.ports.rest
    n = 0
    for declared in (64 * 2**20 + 1, 2**40, 2**63 - 1):
        n += 1
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.putrequest("POST", "/v1/models/m:predict")
        conn.putheader("Content-Length", str(declared))
        conn.endheaders()
        resp = conn.getresponse()
        assert resp.status == 413 and "exceeds the limit" in json.loads(resp.read())["error"]
        conn.close()
    for bad_length in ("-5", "abc"):
        n += 1
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.putrequest("POST", "/v1/models/m:predict")
        conn.putheader("Content-Length", bad_length)
        conn.endheaders()
        resp = conn.getresponse()
        assert resp.status == 400
        conn.close()
    record_property("fuzz_cases", n)


def _rank(n: int):
    from tensorflow.core.framework import tensor_pb2, types_pb2

    t = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    for _ in range(n):
        t.tensor_shape.dim.add().size = 1
    return t


def _padded_strings():
    from tensorflow.core.framework import tensor_pb2, types_pb2

    t = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING)
    t.tensor_shape.dim.add().size = 2**28
    t.string_val.append(b"x")
    return t


@pytest.mark.parametrize(
    "make, message",
    [
        # Found by the properties above: these were INTERNAL (numpy's 64-dimension limit) or
        # allocated gigabytes from a few bytes on the wire.
        (lambda: _rank(65), "tensor_shape has 65 dimensions; this server accepts at most 32"),
        (_padded_strings, "string_val has 1 values for shape [268435456]: padding it would take"),
    ],
)
def test_regressions_found_by_fuzzing(predict_stub, make, message):
    request = predict_request()
    request.inputs["images"].CopyFrom(make())
    with pytest.raises(grpc.RpcError) as info:
        predict_stub.Predict(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in info.value.details()
    _good(predict_stub)


def test_deeply_nested_json_is_invalid_argument_not_a_server_error(labelled_server):
    depth = 100_000
    status, payload = _post(labelled_server.ports.rest, "/v1/models/m:predict", b"[" * depth + b"]" * depth)
    assert status == 400 and "nested 100000 levels deep; this server parses at most 256" in payload["error"]
