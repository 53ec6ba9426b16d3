"""TF Serving's REST API: routes, row/columnar JSON, status/metadata JSON, error mapping."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request

import numpy as np
import pytest

from tests.server.helpers import images
from tests.server.server_test_models import expected_logits, weights


def _call(url: str, body=None, method=None) -> tuple[int, dict]:
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.mark.integration
@pytest.mark.e2e
def test_row_format_returns_one_object_per_instance(rest_base):
    x = images(2)
    status, body = _call(f"{rest_base}/v1/models/m/versions/1:predict", {"instances": x.tolist()})
    assert status == 200
    preds = body["predictions"]
    assert len(preds) == 2 and set(preds[0]) == {"logits", "probabilities", "predicted_class"}
    np.testing.assert_allclose([p["logits"] for p in preds], expected_logits(x, 1.0), rtol=1e-5)
    assert all(isinstance(p["predicted_class"], int) for p in preds)


@pytest.mark.integration
@pytest.mark.e2e
def test_row_format_with_named_objects_feeds_several_inputs(rest_base):
    x = images(1)
    status, body = _call(
        f"{rest_base}/v1/models/m/labels/canary:predict",
        {"signature_name": "explain", "instances": [{"images": x[0].tolist(), "target_class": 2}]},
    )
    assert status == 200
    (pred,) = body["predictions"]
    assert pred["target_class"] == 2
    kernel, _ = weights(2.0)
    grad = np.abs(kernel[:, 2]).reshape(4, 4)
    np.testing.assert_allclose(pred["saliency"], grad / grad.max(), rtol=1e-5)


@pytest.mark.integration
@pytest.mark.e2e
def test_columnar_format_returns_outputs_by_name(rest_base):
    x = images(3)
    status, body = _call(
        f"{rest_base}/v1/models/m:predict",
        {"signature_name": "explain", "inputs": {"images": x.tolist(), "target_class": [0, 1, 2]}},
    )
    assert status == 200
    out = body["outputs"]
    assert set(out) == {"logits", "probabilities", "predicted_class", "target_class", "saliency"}
    assert out["target_class"] == [0, 1, 2]
    np.testing.assert_allclose(out["logits"], expected_logits(x, 2.0), rtol=1e-5)
    assert np.asarray(out["saliency"]).shape == (3, 4, 4)


@pytest.mark.integration
@pytest.mark.e2e
def test_float32_outputs_are_written_with_their_shortest_round_trip_text(rest_base):
    x = np.zeros((1, 4, 4, 1), np.float32)
    status, body = _call(f"{rest_base}/v1/models/m/versions/1:predict", {"inputs": x.tolist()})
    assert status == 200
    assert body["outputs"]["logits"] == [[0.0, 0.5, -0.5]]


@pytest.mark.integration
@pytest.mark.e2e
def test_model_status_json_matches_tf_serving(rest_base):
    status, body = _call(f"{rest_base}/v1/models/m/versions/1")
    assert status == 200
    assert body == {
        "model_version_status": [
            {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }
    status, body = _call(f"{rest_base}/v1/models/m")
    assert [v["version"] for v in body["model_version_status"]] == ["1", "2"]
    status, body = _call(f"{rest_base}/v1/models/m/labels/canary")
    assert [v["version"] for v in body["model_version_status"]] == ["2"]


@pytest.mark.integration
@pytest.mark.e2e
def test_metadata_json_holds_the_signature_defs(rest_base):
    status, body = _call(f"{rest_base}/v1/models/m/versions/2/metadata")
    assert status == 200
    assert body["model_spec"] == {"name": "m", "signature_name": "", "version": "2"}
    sigs = body["metadata"]["signature_def"]["signature_def"]
    assert set(sigs) >= {"serving_default", "explain"}
    assert sigs["explain"]["inputs"]["target_class"]["dtype"] == "DT_INT32"
    assert sigs["explain"]["defaults"]["target_class"]["int_val"] == [-1]


@pytest.mark.integration
@pytest.mark.e2e
@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/v1/models/ghost:predict", {"instances": [[1]]}, 404, "Servable not found for request: Latest(ghost)"),
        ("/v1/models/m/versions/9:predict", {"instances": [[1]]}, 404, "Servable not found for request: Specific(m, 9)"),
        ("/v1/models/m/labels/beta:predict", {"instances": [[1]]}, 400, "Unrecognized servable version label: beta"),
        ("/v1/models/m:predict", b"{not json", 400, "JSON Parse error"),
        ("/v1/models/m:predict", b"", 400, "JSON Parse error: The document is empty"),
        ("/v1/models/m:predict", {"signature_name": "nope", "instances": [[1]]}, 400,
         'Serving signature name: "nope" not found in signature def'),
        ("/v1/models/m:predict", {"signature_name": "explain", "instances": [[[[0.0]]]]}, 400,
         "instances is a plain list, but expecting list of objects as multiple input tensors required as per tensorinfo_map"),
        ("/v1/models/m:predict", {"instances": [[1]], "inputs": [[1]]}, 400,
         "expecting only one of 'inputs' or 'instances' keys to exist"),
        ("/v1/models/m:predict", {"foo": 1}, 400, "Missing 'inputs' or 'instances' key"),
        ("/v1/models/m:predict", {"instances": []}, 400, "No values in 'instances' array"),
        ("/v1/models/m:predict", {"inputs": [[[[1.0]], [[1.0, 2.0]]]]}, 400,
         "Encountered list at unexpected size: 2 at level: 3 expected size: 1"),
        ("/v1/models/m:predict", {"inputs": [[["a"] * 1] * 4] * 4}, 400, "is not of expected type: float"),
        ("/v1/models/m:predict", {"inputs": np.zeros((1, 4, 4, 2)).tolist()}, 400, 'input "images" expects shape [-1,4,4,1]'),
        ("/v1/models/m:predict", {"inputs": np.full((1, 4, 4, 1), float("nan")).tolist()}, 400, "Tensor had NaN values"),
        ("/v1/models/m:predict", {"signature_name": "explain", "inputs": {"images": np.zeros((1, 4, 4, 1)).tolist()}}, 400,
         "Missing named input: target_class in 'inputs' object."),
        ("/v1/models/m:predict", {"signature_name": "explain", "inputs": {"images": np.zeros((1, 4, 4, 1)).tolist(), "target_class": [1.5]}}, 400,
         "is not of expected type: int32"),
        ("/v1/models/m:predict", {"signature_name": "explain", "inputs": {"images": np.zeros((1, 4, 4, 1)).tolist(), "target_class": [5]}}, 400,
         "target_class must be -1 (predicted) or in [0, 3)"),
        ("/v1/models/m:regress", {"examples": []}, 501, "regress is not implemented"),
        ("/v1/other", {"instances": [[1]]}, 400, "Malformed request: POST /v1/other"),
    ],
)
def test_rest_errors_carry_tf_serving_status_and_message(rest_base, path, body, status, message):
    got_status, got = _call(rest_base + path, body)
    assert got_status == status, got
    assert message in got["error"]
    # and the server keeps serving
    ok, _ = _call(f"{rest_base}/v1/models/m:predict", {"instances": images(1).tolist()})
    assert ok == 200


@pytest.mark.integration
@pytest.mark.e2e
@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/v1/models/ghost", 404, "Could not find any versions of model ghost"),
        ("/v1/models/m/versions/9", 404, "Could not find version 9 of model m"),
        ("/v1/models", 400, "Missing model name in request."),
        ("/v1/models/ghost/metadata", 404, "Servable not found for request: Latest(ghost)"),
    ],
)
def test_rest_get_errors(rest_base, path, status, message):
    got_status, got = _call(rest_base + path)
    assert (got_status, got["error"]) == (status, message)


@pytest.fixture(scope="module")
def small_body_server(labelled_server):
    from model_server import ModelServer, ServerOptions

    options = ServerOptions(
        models=labelled_server.options.models[1:],  # just `solo`
        port=0,
        rest_api_port=0,
        file_system_poll_wait_seconds=0,
        rest_api_max_body_bytes=2000,
    )
    with ModelServer(options) as server:
        yield server


@pytest.mark.integration
@pytest.mark.e2e
def test_a_body_over_the_limit_is_refused_with_413_and_a_clear_error(small_body_server):
    port = small_body_server.ports.rest
    big = json.dumps({"instances": np.zeros((20, 4, 4, 1)).tolist()}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/v1/models/solo:predict", body=big)
    resp = conn.getresponse()
    assert resp.status == 413
    error = json.loads(resp.read())["error"]
    assert f"Request body of {len(big)} bytes exceeds the limit of 2000 bytes" in error
    conn.close()
    small = json.dumps({"instances": np.zeros((1, 4, 4, 1)).tolist()}).encode()
    status, body = _call(f"http://127.0.0.1:{port}/v1/models/solo:predict", small)
    assert status == 200 and len(body["predictions"]) == 1


def test_b64_strings_decode_for_string_inputs():
    from tensorflow.core.framework import types_pb2

    from model_server._json_tensor import json_to_array, make_predict_json

    arr = json_to_array([{"b64": "aGk="}, "yo"], types_pb2.DT_STRING)
    assert arr.tolist() == [b"hi", b"yo"]
    out = json.loads(make_predict_json({"x_bytes": arr}, "columnar"))
    assert out == {"outputs": [{"b64": "aGk="}, {"b64": "eW8="}]}
