"""PredictionService/ModelService over a real 127.0.0.1 socket with the official stubs."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from tests.server.helpers import images, outputs, predict_request
from tests.server.server_test_models import K, expected_logits, weights

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_serving_default_returns_the_models_logits_and_echoes_the_model_spec(predict_stub):
    x = images(3)
    response = predict_stub.Predict(predict_request(images=x), timeout=10)
    out = outputs(response)
    assert set(out) == {"logits", "probabilities", "predicted_class"}
    np.testing.assert_allclose(out["logits"], expected_logits(x, 2.0), rtol=1e-5)  # latest = v2
    assert out["predicted_class"].dtype == np.int32
    np.testing.assert_array_equal(out["predicted_class"], out["logits"].argmax(-1))
    assert response.model_spec.name == "m"
    assert response.model_spec.version.value == 2
    assert response.model_spec.signature_name == "serving_default"


def test_outputs_are_encoded_in_val_fields_like_tf_serving(predict_stub):
    response = predict_stub.Predict(predict_request(images=images(1)), timeout=10)
    logits = response.outputs["logits"]
    assert not logits.tensor_content
    assert len(logits.float_val) == K
    assert [d.size for d in logits.tensor_shape.dim] == [1, K]
    assert len(response.outputs["predicted_class"].int_val) == 1


def test_explain_without_target_class_uses_the_signature_default(predict_stub):
    x = images(2)
    out = outputs(predict_stub.Predict(predict_request(signature="explain", images=x), timeout=10))
    np.testing.assert_array_equal(out["target_class"], out["predicted_class"])
    kernel, _ = weights(2.0)
    for row, target in zip(out["saliency"], out["target_class"], strict=True):
        grad = np.abs(kernel[:, target]).reshape(row.shape)
        np.testing.assert_allclose(row, grad / grad.max(), rtol=1e-5)


def test_explain_with_explicit_target_class(predict_stub):
    x = images(2)
    req = predict_request(signature="explain", images=x, target_class=np.array([0, 2], np.int32))
    out = outputs(predict_stub.Predict(req, timeout=10))
    np.testing.assert_array_equal(out["target_class"], [0, 2])
    assert out["saliency"].shape == (2, 4, 4)
    assert out["saliency"].min() >= 0 and out["saliency"].max() <= 1


def test_output_filter_returns_only_the_requested_aliases(predict_stub):
    req = predict_request(signature="explain", images=images(1), output_filter=("saliency", "logits"))
    response = predict_stub.Predict(req, timeout=10)
    assert set(response.outputs) == {"saliency", "logits"}


@pytest.mark.parametrize(
    ("spec", "version"),
    [({"version": 1}, 1), ({"version": 2}, 2), ({"label": "stable"}, 1), ({"label": "canary"}, 2)],
)
def test_version_and_label_select_the_version(predict_stub, spec, version):
    x = images(1)
    response = predict_stub.Predict(predict_request(images=x, **spec), timeout=10)
    assert response.model_spec.version.value == version
    np.testing.assert_allclose(outputs(response)["logits"], expected_logits(x, float(version)), rtol=1e-5)


def test_get_model_metadata_packs_a_signature_def_map(predict_stub):
    from tensorflow_serving.apis import get_model_metadata_pb2

    req = get_model_metadata_pb2.GetModelMetadataRequest()
    req.model_spec.name = "m"
    req.model_spec.version.value = 1
    req.metadata_field.append("signature_def")
    response = predict_stub.GetModelMetadata(req, timeout=10)
    assert response.model_spec.name == "m" and response.model_spec.version.value == 1
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(sig_map)
    explain = sig_map.signature_def["explain"]
    assert set(explain.inputs) == {"images", "target_class"}
    assert set(explain.outputs) == {"logits", "probabilities", "predicted_class", "target_class", "saliency"}
    assert list(explain.defaults["target_class"].int_val) == [-1]
    assert set(sig_map.signature_def["serving_default"].outputs) == {"logits", "probabilities", "predicted_class"}


def test_get_model_status_lists_every_version_available_and_ok(model_stub):
    from tensorflow_serving.apis import get_model_status_pb2

    req = get_model_status_pb2.GetModelStatusRequest()
    req.model_spec.name = "m"
    response = model_stub.GetModelStatus(req, timeout=10)
    got = [(s.version, get_model_status_pb2.ModelVersionStatus.State.Name(s.state), s.status.error_code)
           for s in response.model_version_status]
    assert got == [(1, "AVAILABLE", 0), (2, "AVAILABLE", 0)]
    req.model_spec.version.value = 2
    assert [s.version for s in model_stub.GetModelStatus(req, timeout=10).model_version_status] == [2]


BAD_REQUESTS = {
    "wrong_shape": (
        lambda: predict_request(images=np.zeros((1, 4, 4, 2), np.float32)),
        grpc.StatusCode.INVALID_ARGUMENT,
        'input "images" expects shape [-1,4,4,1]',
    ),
    "wrong_rank": (
        lambda: predict_request(images=np.zeros((4, 4), np.float32)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "but the request sent shape [4,4]",
    ),
    "wrong_dtype": (
        lambda: predict_request(images=np.zeros((1, 4, 4, 1), np.int32)),
        grpc.StatusCode.INVALID_ARGUMENT,
        'input "images" expects dtype DT_FLOAT (per the signature) but the request sent DT_INT32',
    ),
    "nan_image": (
        lambda: predict_request(images=np.full((1, 4, 4, 1), np.nan, np.float32)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Tensor had NaN values",
    ),
    "target_out_of_range": (
        lambda: predict_request(signature="explain", images=images(1), target_class=np.array([3], np.int32)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "target_class must be -1 (predicted) or in [0, 3)",
    ),
    "unknown_signature": (
        lambda: predict_request(signature="nope", images=images(1)),
        grpc.StatusCode.FAILED_PRECONDITION,
        'Serving signature key "nope" not found.',
    ),
    "unknown_model": (
        lambda: predict_request(name="ghost", images=images(1)),
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Latest(ghost)",
    ),
    "unknown_version": (
        lambda: predict_request(version=9, images=images(1)),
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Specific(m, 9)",
    ),
    "unknown_label": (
        lambda: predict_request(label="beta", images=images(1)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Unrecognized servable version label: beta",
    ),
    "missing_input": (
        lambda: predict_request(),
        grpc.StatusCode.INVALID_ARGUMENT,
        "input size does not match signature: 0!=1 len({}) != len({images}). Sent extra: {}. "
        "Missing but required: {images}.",
    ),
    "extra_input": (
        lambda: predict_request(images=images(1), extra=np.zeros(1, np.float32)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "input size does not match signature: 2!=1 len({extra,images}) != len({images}). "
        "Sent extra: {extra}.",
    ),
    "missing_non_default_input_with_defaults": (
        lambda: predict_request(signature="explain", target_class=np.array([0], np.int32)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Signature input alias: images(feed name: explain_images:0) not found in request and no "
        "default value provided.",
    ),
    "misnamed_input_with_defaults": (
        lambda: predict_request(signature="explain", images=images(1), target=np.array([0], np.int32)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Inputs contains invalid name. Used request inputs: images, request input: images,target",
    ),
    "unknown_output_filter": (
        lambda: predict_request(images=images(1), output_filter=("saliency",)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "output tensor alias not found in signature: saliency Outputs expected to be in the set "
        "{logits,predicted_class,probabilities}.",
    ),
    "duplicate_output_filter": (
        lambda: predict_request(images=images(1), output_filter=("logits", "logits")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "duplicate output tensor alias: logits",
    ),
}


def _tensor_content_short():
    req = predict_request(images=images(1))
    t = req.inputs["images"]
    t.tensor_content = t.tensor_content[:-4]
    return req


def _negative_dim():
    req = predict_request(images=images(1))
    req.inputs["images"].tensor_shape.dim[0].size = -3
    return req


def _huge_dims():
    from tensorflow.core.framework import tensor_pb2, types_pb2

    req = predict_request()
    t = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    for size in (1 << 40, 4, 4, 1):
        t.tensor_shape.dim.add().size = size
    t.float_val.append(1.0)
    req.inputs["images"].CopyFrom(t)
    return req


def _too_many_values():
    req = predict_request(images=images(1))
    t = req.inputs["images"]
    values = np.frombuffer(t.tensor_content, np.float32).tolist() + [1.0]
    t.ClearField("tensor_content")
    t.float_val.extend(values)
    return req


BAD_REQUESTS.update(
    {
        "tensor_content_length": (
            _tensor_content_short,
            grpc.StatusCode.INVALID_ARGUMENT,
            "tensor parsing error: images (tensor_content has 60 bytes but shape [1,4,4,1] of DT_FLOAT needs 64)",
        ),
        "negative_dim": (_negative_dim, grpc.StatusCode.INVALID_ARGUMENT, "has a negative dimension"),
        "huge_dims": (_huge_dims, grpc.StatusCode.INVALID_ARGUMENT, "tensor parsing error: images (shape [1099511627776,4,4,1]"),
        "too_many_values": (_too_many_values, grpc.StatusCode.INVALID_ARGUMENT, "float_val has 17 values but shape [1,4,4,1] holds only 16"),
    }
)


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_request_gets_the_right_code_and_message_and_the_server_keeps_serving(predict_stub, case):
    make, code, message = BAD_REQUESTS[case]
    with pytest.raises(grpc.RpcError) as info:
        predict_stub.Predict(make(), timeout=10)
    assert info.value.code() == code, info.value.details()
    assert message in info.value.details()
    # The very next good request succeeds.
    response = predict_stub.Predict(predict_request(images=images(1)), timeout=10)
    assert outputs(response)["logits"].shape == (1, K)


def test_a_short_val_list_is_padded_with_its_last_value_like_tensorflow(predict_stub):
    from tensorflow.core.framework import tensor_pb2, types_pb2

    t = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    for size in (1, 4, 4, 1):
        t.tensor_shape.dim.add().size = size
    t.float_val.append(0.5)
    out = outputs(predict_stub.Predict(predict_request(images=t), timeout=10))
    np.testing.assert_allclose(out["logits"], expected_logits(np.full((1, 4, 4, 1), 0.5, np.float32), 2.0), rtol=1e-5)


def test_metadata_and_status_errors_follow_tf_serving(predict_stub, model_stub):
    from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

    req = get_model_metadata_pb2.GetModelMetadataRequest()
    req.model_spec.name = "m"
    with pytest.raises(grpc.RpcError) as info:
        predict_stub.GetModelMetadata(req, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == "GetModelMetadataRequest must specify at least one metadata_field"
    req.metadata_field.append("other")
    with pytest.raises(grpc.RpcError) as info:
        predict_stub.GetModelMetadata(req, timeout=10)
    assert info.value.details() == "Metadata field other is not supported"

    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = "m"
    status.model_spec.version.value = 7
    with pytest.raises(grpc.RpcError) as info:
        model_stub.GetModelStatus(status, timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert info.value.details() == "Could not find version 7 of model m"
    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = "ghost"
    with pytest.raises(grpc.RpcError) as info:
        model_stub.GetModelStatus(status, timeout=10)
    assert info.value.details() == "Could not find any versions of model ghost"


def test_classify_is_unimplemented(predict_stub):
    from tensorflow_serving.apis import classification_pb2

    req = classification_pb2.ClassificationRequest()
    req.model_spec.name = "m"
    with pytest.raises(grpc.RpcError) as info:
        predict_stub.Classify(req, timeout=10)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_request_counters_count_per_model_signature_and_code(labelled_server, predict_stub):
    before = labelled_server.request_counts()
    predict_stub.Predict(predict_request(name="solo", images=images(1)), timeout=10)
    with pytest.raises(grpc.RpcError):
        predict_stub.Predict(predict_request(name="solo", signature="explain", images=images(1), target_class=np.array([9], np.int32)), timeout=10)
    after = labelled_server.request_counts()
    ok = ("solo", "predict/serving_default", "OK")
    bad = ("solo", "predict/explain", "INVALID_ARGUMENT")
    assert after.get(ok, 0) - before.get(ok, 0) == 1
    assert after.get(bad, 0) - before.get(bad, 0) == 1
