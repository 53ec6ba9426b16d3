"""TF Serving's own test vectors, run against the bundled server.

The vectors live as data in ``tests/server/tfserving_vectors/``, transcribed from
tensorflow/serving's ``util/json_tensor_test.cc`` and ``servables/tensorflow/
predict_util_test.cc`` (each case names its C++ test). Expected values are TF Serving's; a case
marked ``difference`` asserts this server's documented behaviour instead (README, "Differences
from TF Serving").

Three levels: the codec in-process (every json_tensor vector), ``run_predict`` on the rebuilt
half_plus_two/counter SavedModels (every predict_util vector), and end to end over real
sockets — every request vector over REST (http.client) against echo SavedModels whose outputs
are their inputs, the float-writing and complex64 vectors over REST, and every predict_util
vector over gRPC Predict with the official ``tensorflow_serving.apis`` stubs.
"""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

VECTORS = Path(__file__).parent / "tfserving_vectors"
JSON_TENSOR = json.loads((VECTORS / "json_tensor_test.json").read_text())
PREDICT_UTIL = json.loads((VECTORS / "predict_util_test.json").read_text())

_SPECIAL = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf"), "-0": -0.0}


def _cases(doc: dict, kind: str | None = None) -> list:
    cases = [c for c in doc["cases"] if kind is None or c.get("kind") == kind]
    return [pytest.param(c, id=_case_id(c)) for c in cases]


def _case_id(case: dict) -> str:
    name = case["test"].split(" ")[0]
    return f"{name}[{case['case']}]" if "case" in case else name


def _body(case: dict) -> bytes:
    if "body_parts" in case:
        return "".join(text * n for text, n in case["body_parts"]).encode()
    return case["body"].encode()


def _expected(case: dict) -> dict:
    """TF Serving's expectation, or ours where the case records a deliberate difference."""
    if "difference" in case:
        return case["ours"]
    return {k: case[k] for k in ("ok", "error") if k in case}


def _dtype(name: str) -> int:
    from tensorflow.core.framework import types_pb2

    return types_pb2.DataType.Value(name)


def _values(spec: dict) -> np.ndarray:
    """The expected tensor as an array: strings as UTF-8 bytes, NaN/±Infinity/-0 decoded."""
    from model_server._tensor_codec import numpy_dtype

    np_dtype = numpy_dtype(_dtype(spec["dtype"]))
    values = spec["values"]
    if spec["dtype"] == "DT_STRING":
        out = np.empty(len(values), dtype=object)
        out[:] = [v.encode() for v in values]
        return out.reshape(spec["shape"])
    values = [_SPECIAL.get(v, v) if isinstance(v, str) else v for v in values]
    return np.array(values, dtype=np_dtype).reshape(spec["shape"])


def _assert_tensor(got: np.ndarray, spec: dict) -> None:
    want = _values(spec)
    assert list(got.shape) == list(spec["shape"]), (got.shape, spec["shape"])
    if spec["dtype"] == "DT_STRING":
        assert got.tolist() == want.tolist()
        return
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    np.testing.assert_array_equal(got, want)
    # EqualsProto tells -0 from 0 only through its text; keep the sign where a case names it.
    assert np.array_equal(np.signbit(got), np.signbit(want))


def _assert_error(code: str, message: str, expected: dict) -> None:
    assert code == expected["code"], (code, message)
    contains = expected.get("contains", [])
    for text in [contains] if isinstance(contains, str) else contains:
        assert text in message, (text, message)


def _infos(infomap: dict[str, str]) -> dict:
    from tensorflow.core.protobuf import meta_graph_pb2

    return {name: meta_graph_pb2.TensorInfo(dtype=_dtype(dt)) for name, dt in infomap.items()}


# ---- json_tensor_test.cc, in process ------------------------------------------------------


@pytest.mark.parametrize("case", _cases(JSON_TENSOR, "request"))
def test_json_request_vectors_in_process(case):
    from model_server._errors import ServingError
    from model_server._json_tensor import parse_predict_body

    infos = _infos(case["infomap"])
    expected = _expected(case)
    try:
        signature, tensors, fmt = parse_predict_body(_body(case), lambda _name: infos)
    except ServingError as exc:
        assert "error" in expected, f"TF Serving accepts this request; we refused: {exc!r}"
        _assert_error(exc.code.name, exc.message, expected["error"])
        return
    assert "ok" in expected, f"TF Serving refuses this request; we accepted: {tensors}"
    ok = expected["ok"]
    assert fmt == ok["format"]
    assert signature == ok.get("signature_name", "")
    assert set(tensors) == set(ok["tensors"])
    for name, spec in ok["tensors"].items():
        _assert_tensor(tensors[name], spec)


def _array(spec: dict) -> np.ndarray:
    if spec["dtype"] == "DT_COMPLEX64":
        pairs = np.array(spec["values"], dtype=np.float32).reshape(-1, 2)
        flat = pairs[:, 0] + 1j * pairs[:, 1]
        count = int(np.prod(spec["shape"]))
        # Tensor::FromProto pads a short value list with its last value.
        return np.resize(flat, count).astype(np.complex64).reshape(spec["shape"])
    return _values(spec)


def _assert_same_json(got: str, want: str, compare: str) -> None:
    if compare == "strings":  # CompareJsonAllValuesAsStrings: numbers compared as their text
        def parse(text: str) -> Any:
            return json.loads(text, parse_float=str, parse_int=str, parse_constant=str)
    else:  # CompareJson: values (1 == 1.0, as rapidjson's operator==)
        def parse(text: str) -> Any:
            return json.loads(text)

    assert parse(got) == parse(want), got


@pytest.mark.parametrize("case", _cases(JSON_TENSOR, "response"))
def test_json_response_vectors_in_process(case):
    from model_server._errors import ServingError
    from model_server._json_tensor import make_predict_json

    tensors = {name: _array(spec) for name, spec in case["tensors"].items()}
    try:
        text = make_predict_json(tensors, case["format"])
    except ServingError as exc:
        assert "error" in case, f"TF Serving writes this response; we refused: {exc!r}"
        _assert_error(exc.code.name, exc.message, case["error"])
        return
    assert "error" not in case, f"TF Serving refuses this response; we wrote {text}"
    _assert_same_json(text, case["json"], case["compare"])


@pytest.mark.parametrize("case", _cases(JSON_TENSOR, "status"))
def test_json_status_vectors(case):
    from model_server._json_tensor import error_json

    _assert_same_json(error_json(case["message"]), case["json"], case["compare"])


# ---- predict_util_test.cc, on the loaded SavedModels ----------------------------------------


@pytest.fixture(scope="module")
def predict_util_models(tmp_path_factory) -> dict[str, Path]:
    """half_plus_two and counter, each as ``<base>/123`` (kTestModelVersion)."""
    from tests.server.tfserving_models import build_counter, build_half_plus_two

    root = tmp_path_factory.mktemp("predict_util")
    build_half_plus_two(root / "half_plus_two" / "123")
    build_counter(root / "counter" / "123")
    return {"half_plus_two": root / "half_plus_two", "counter": root / "counter"}


def _tensor_proto(spec: dict):
    from tensorflow.core.framework import tensor_pb2, types_pb2

    proto = tensor_pb2.TensorProto(dtype=_dtype(spec["dtype"]))
    field = {
        types_pb2.DT_FLOAT: "float_val",
        types_pb2.DT_STRING: "string_val",
        types_pb2.DT_BOOL: "bool_val",
    }[proto.dtype]
    values = [v.encode() for v in spec["values"]] if field == "string_val" else spec["values"]
    getattr(proto, field).extend(values)
    for d in spec.get("shape", []):
        proto.tensor_shape.dim.add().size = d
    return proto


def _steps(case: dict) -> list[dict]:
    return case.get("sequence") or [case]


@pytest.mark.integration
@pytest.mark.parametrize("case", _cases(PREDICT_UTIL))
def test_predict_util_vectors_with_run_predict(case, predict_util_models):
    from model_server._errors import ServingError
    from model_server._predict import run_predict
    from model_server._servable import load_saved_model

    servable = load_saved_model("test_model", 123, predict_util_models[case["model"]] / "123")
    try:
        for step in _steps(case):
            req = step["request"]
            inputs = {k: _tensor_proto(v) for k, v in req["inputs"].items()}
            try:
                key, outputs = run_predict(
                    servable, req.get("signature_name", ""), inputs, req.get("output_filter", ())
                )
            except ServingError as exc:
                assert "error" in step, f"TF Serving answers OK; we refused: {exc!r}"
                _assert_error(exc.code.name, exc.message, step["error"])
                continue
            assert "error" not in step, f"TF Serving refuses; we answered {outputs}"
            want = step["ok"]
            if "model_spec" in want:
                assert key == want["model_spec"]["signature_name"]
            for alias, spec in want.get("outputs", {}).items():
                _assert_tensor(np.asarray(outputs[alias]), spec)
            if "outputs" in want:
                assert set(outputs) == set(want["outputs"])
    finally:
        servable.close()


# ---- end to end: gRPC Predict with the official stubs ---------------------------------------


@pytest.fixture(scope="module")
def predict_util_server(predict_util_models):
    """The rebuilt models served as TF Serving's test serves them, one server each (both are
    ``test_model`` in the C++ test)."""
    from model_server import ModelServer, ServerOptions

    servers = {}
    try:
        for name, base in predict_util_models.items():
            server = ModelServer(
                ServerOptions.single_model("test_model", base, port=0, rest_api_port=0)
            )
            server.start()
            servers[name] = server
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@pytest.mark.integration
@pytest.mark.e2e
@pytest.mark.parametrize("case", _cases(PREDICT_UTIL))
def test_predict_util_vectors_over_grpc(case, predict_util_server):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    server = predict_util_server[case["model"]]
    with grpc.insecure_channel(f"127.0.0.1:{server.ports.grpc}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        if case["model"] == "counter":  # stateful: start from 0, as the C++ test's fresh load
            reset = predict_pb2.PredictRequest()
            reset.model_spec.name = "test_model"
            reset.model_spec.signature_name = "reset_counter"
            stub.Predict(reset, timeout=30)
        for step in _steps(case):
            req = step["request"]
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "test_model"
            request.model_spec.version.value = 123
            if "signature_name" in req:
                request.model_spec.signature_name = req["signature_name"]
            for alias, spec in req["inputs"].items():
                request.inputs[alias].CopyFrom(_tensor_proto(spec))
            request.output_filter.extend(req.get("output_filter", ()))
            try:
                response = stub.Predict(request, timeout=30)
            except grpc.RpcError as err:
                assert "error" in step, f"TF Serving answers OK; we refused: {err.code()} {err.details()}"
                _assert_error(err.code().name, err.details(), step["error"])
                continue
            assert "error" not in step, f"TF Serving refuses; we answered {response}"
            want = step["ok"]
            if "model_spec" in want:
                spec = want["model_spec"]
                assert response.model_spec.name == spec["name"]
                assert response.model_spec.version.value == spec["version"]
                assert response.model_spec.signature_name == spec["signature_name"]
            if "outputs" in want:
                assert set(response.outputs) == set(want["outputs"])
            for alias, spec in want.get("outputs", {}).items():
                proto = response.outputs[alias]
                assert proto.dtype == _dtype(spec["dtype"])
                # The C++ test's expected proto: float_val, and a present but empty shape.
                assert proto.HasField("tensor_shape") and list(proto.tensor_shape.dim) == []
                _assert_tensor(tf.make_ndarray(proto), spec)
        # the server keeps serving after every refusal
        good = predict_pb2.PredictRequest()
        good.model_spec.name = "test_model"
        good.model_spec.signature_name = "get_counter" if case["model"] == "counter" else ""
        if case["model"] != "counter":
            good.inputs["x"].CopyFrom(tf.make_tensor_proto(np.float32(2.0)))
        stub.Predict(good, timeout=30)


# ---- end to end: REST over http.client against echo models ----------------------------------


def _infomap_key(infomap: dict[str, str]) -> str:
    return "echo_" + "_".join(f"{k}-{v}" for k, v in sorted(infomap.items())).lower()


@pytest.fixture(scope="module")
def echo_server(tmp_path_factory):
    """One model per TensorInfoMap of the request vectors: each input comes back unchanged as
    the output of the same alias (``serving_default`` and ``predict_images``); and
    ``complex_out``, whose output is complex64."""
    from model_server import ModelServer, ServerOptions, parse_model_config_text
    from tests.server.tfserving_models import _save, _sig

    root = tmp_path_factory.mktemp("echo")
    maps = {_infomap_key(c["infomap"]): c["infomap"] for c in JSON_TENSOR["cases"] if c["kind"] == "request"}
    for key, infomap in maps.items():

        def build(tf, infomap=infomap):
            inputs = {k: tf.compat.v1.placeholder(_dtype(v), shape=None, name=k) for k, v in infomap.items()}
            outputs = {k: tf.identity(t, name=f"{k}_out") for k, t in inputs.items()}
            sig = _sig(tf, inputs, outputs, "tensorflow/serving/predict")
            return {"serving_default": sig, "predict_images": sig}

        _save(root / key / "1", build)

    def build_complex(tf):
        x = tf.compat.v1.placeholder(tf.float32, shape=None, name="x")
        return {"serving_default": _sig(tf, {"x": x}, {"tensor": tf.complex(x, x)}, "tensorflow/serving/predict")}

    _save(root / "complex_out" / "1", build_complex)
    text = "model_config_list {" + "".join(
        f' config {{ name: "{name}" base_path: "{root / name}" model_platform: "tensorflow" }}'
        for name in [*maps, "complex_out"]
    ) + " }"
    server = ModelServer(
        ServerOptions(
            models=tuple(parse_model_config_text(text)), port=0, rest_api_port=0,
            file_system_poll_wait_seconds=0,
        )
    )
    server.start()
    yield server
    server.stop()


def _post(port: int, path: str, body: bytes) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def _from_json(value: Any, spec: dict) -> np.ndarray:
    if spec["dtype"] == "DT_STRING":
        flat = np.array(value, dtype=object).ravel()
        out = np.empty(flat.size, dtype=object)
        out[:] = [v.encode() for v in flat]
        return out.reshape(np.shape(value))
    from model_server._tensor_codec import numpy_dtype

    return np.array(value, dtype=numpy_dtype(_dtype(spec["dtype"])))


_HTTP = {"INVALID_ARGUMENT": 400, "UNIMPLEMENTED": 501}


@pytest.mark.integration
@pytest.mark.e2e
@pytest.mark.parametrize("case", _cases(JSON_TENSOR, "request"))
def test_json_request_vectors_over_rest(case, echo_server):
    port = echo_server.ports.rest
    model = _infomap_key(case["infomap"])
    status, text = _post(port, f"/v1/models/{model}:predict", _body(case))
    expected = _expected(case)
    payload = json.loads(text)
    if "error" in expected:
        assert status == _HTTP[expected["error"]["code"]], (status, text)
        _assert_error(expected["error"]["code"], payload["error"], expected["error"])
    else:
        assert status == 200, (status, text)
        ok = expected["ok"]
        names = sorted(ok["tensors"])
        if ok["format"] == "row":
            preds = payload["predictions"]
            columns = {names[0]: preds} if len(names) == 1 else {n: [p[n] for p in preds] for n in names}
        else:
            outs = payload["outputs"]
            columns = {names[0]: outs} if len(names) == 1 else outs
        for name in names:
            _assert_tensor(_from_json(columns[name], ok["tensors"][name]), ok["tensors"][name])
    # and the server keeps serving
    good = {"instances": [1]} if case["infomap"] == {"default": "DT_INT32"} else None
    if good is not None:
        assert _post(port, f"/v1/models/{model}:predict", json.dumps(good).encode())[0] == 200


@pytest.mark.integration
@pytest.mark.e2e
def test_float_outputs_are_written_as_tf_serving_writes_them_over_rest(echo_server):
    # FromJsonSingleFloatTensorSixDigitPrecision and ...NonFinite, through a real response.
    case = next(c for c in JSON_TENSOR["cases"] if c["test"].endswith("FromJsonSingleFloatTensorSixDigitPrecision"))
    values = case["tensors"]["float_tensor"]["values"]
    body = json.dumps({"inputs": [values[:3], values[3:]]}).encode()
    status, text = _post(echo_server.ports.rest, f"/v1/models/{_infomap_key({'default': 'DT_FLOAT'})}:predict", body)
    assert status == 200, text
    want = json.loads(case["json"], parse_float=str, parse_int=str)["predictions"]
    assert json.loads(text, parse_float=str, parse_int=str) == {"outputs": want}
    status, text = _post(
        echo_server.ports.rest,
        f"/v1/models/{_infomap_key({'default': 'DT_FLOAT'})}:predict",
        b'{"instances": [[NaN, Infinity], [3, -Infinity]]}',
    )
    nonfinite = next(c for c in JSON_TENSOR["cases"] if c["test"].endswith("FromJsonSingleFloatTensorNonFinite"))
    assert status == 200, text
    _assert_same_json(text, nonfinite["json"], "strings")


@pytest.mark.integration
@pytest.mark.e2e
def test_complex64_output_is_400_with_tf_servings_message_over_rest(echo_server):
    # FromJsonSingleTensorErrors, case 2: "Failed to write JSON value for tensor type: complex64".
    status, text = _post(echo_server.ports.rest, "/v1/models/complex_out:predict", b'{"instances": [1.0, 2.0]}')
    assert status == 400, text
    assert json.loads(text) == {"error": "Failed to write JSON value for tensor type: complex64"}
    status, _ = _post(echo_server.ports.rest, "/v1/models/complex_out:predict", b'{"instances": []}')
    assert status == 400  # "No values in 'instances' array"; the server is still answering
