"""ServingClient against a real gRPC server on 127.0.0.1 (official TF Serving stubs)."""

from __future__ import annotations

import numpy as np
import pytest

import serving_client as sc
from serving_client import ServingClient, contract

from .conftest import IMAGE_SHAPE, logits_for, saliency_for, softmax

RNG = np.random.default_rng(0)


def images(batch: int) -> np.ndarray:
    return RNG.uniform(-1, 1, size=(batch, *IMAGE_SHAPE)).astype(np.float32)


@pytest.fixture
def client(serving):
    with ServingClient(serving.target, "mnist", timeout=5.0) as client:
        yield client


def last_request(official, serving):
    return official.predict_pb2.PredictRequest.FromString(serving.requests[-1])


def test_predict_decodes_val_form_outputs_with_shapes_and_dtypes(client):
    batch = images(4)
    prediction = client.predict(batch)
    np.testing.assert_allclose(prediction.logits, logits_for(batch), rtol=1e-6)
    np.testing.assert_allclose(prediction.probabilities, softmax(logits_for(batch)), rtol=1e-6)
    assert prediction.predicted_class.dtype == np.int32
    assert prediction.predicted_class.shape == (4,)
    assert prediction.model_name == "mnist"
    assert prediction.model_version == 1
    assert prediction.signature_name == "serving_default"


def test_explain_decodes_tensor_content_outputs(client):
    batch = images(3)
    explanation = client.explain(batch)
    np.testing.assert_allclose(explanation.saliency, saliency_for(batch), rtol=1e-6)
    assert explanation.saliency.shape == (3, *IMAGE_SHAPE[:2])
    assert explanation.saliency.dtype == np.float32
    np.testing.assert_array_equal(explanation.target_class, explanation.predicted_class)
    assert explanation.signature_name == "explain"
    assert dict(explanation.extras) == {}


def test_explain_without_target_class_sends_minus_one_per_image(client, official, serving):
    # One value per image (not the signature's length-1 default), so the request survives
    # TF Serving's request batching, which concatenates every input along dimension 0.
    client.explain(images(2))
    request = last_request(official, serving)
    assert set(request.inputs) == {"images", "target_class"}
    np.testing.assert_array_equal(official.tf.make_ndarray(request.inputs["target_class"]), [-1, -1])
    assert request.model_spec.signature_name == "explain"


def test_explain_int_target_class_is_sent_as_int32_per_image(client, official, serving):
    explanation = client.explain(images(3), target_class=2)
    sent = official.tf.make_ndarray(last_request(official, serving).inputs["target_class"])
    assert sent.dtype == np.int32
    np.testing.assert_array_equal(sent, [2, 2, 2])
    np.testing.assert_array_equal(explanation.target_class, [2, 2, 2])


def test_explain_per_image_target_classes(client):
    explanation = client.explain(images(3), target_class=[0, 1, -1])
    assert explanation.target_class[:2].tolist() == [0, 1]
    assert explanation.target_class[2] == explanation.predicted_class[2]


def test_single_image_gets_a_batch_dimension(client, official, serving):
    explanation = client.explain(images(1)[0])
    sent = last_request(official, serving).inputs["images"]
    assert [dim.size for dim in sent.tensor_shape.dim] == [1, *IMAGE_SHAPE]
    assert explanation.saliency.shape == (1, *IMAGE_SHAPE[:2])


def test_integer_images_are_sent_as_float32(client, official, serving):
    client.predict(np.ones((1, *IMAGE_SHAPE), dtype=np.uint8))
    sent = last_request(official, serving).inputs["images"]
    assert sent.dtype == official.tf.float32.as_datatype_enum


def test_val_form_single_value_is_broadcast_to_the_full_shape(client):
    explanation = client.explain(np.zeros((2, *IMAGE_SHAPE)), signature="explain_vals")
    assert explanation.saliency.shape == (2, *IMAGE_SHAPE[:2])
    assert not explanation.saliency.any()


def test_extra_outputs_of_other_signatures_land_in_extras(client):
    batch = images(2)
    explanation = client.explain(batch, signature="explain_integrated_gradients")
    assert set(explanation.extras) == {"attributions", "approximation_error"}
    np.testing.assert_allclose(explanation.extras["attributions"], batch * 0.5)
    assert explanation.extras["approximation_error"].shape == (2,)


@pytest.mark.parametrize(
    ("method", "signature"),
    [
        ("vanilla", "explain"),
        ("smoothgrad", "explain_smoothgrad"),
        ("integrated_gradients", "explain_integrated_gradients"),
        ("gradient_x_input", "explain_gradient_x_input"),
        ("gradcam", "explain_gradcam"),
    ],
)
def test_method_selects_its_signature(official, serving, method, signature):
    with ServingClient(serving.target, "every", timeout=5.0) as client:
        explanation = client.explain(images(1), method=method)
    assert last_request(official, serving).model_spec.signature_name == signature
    assert explanation.signature_name == signature
    assert explanation.method == method
    assert contract.signature_name(method) == signature
    assert contract.method_of_signature(signature) == method


def test_default_is_vanilla_and_signature_still_works(client, official, serving):
    assert client.explain(images(1)).method == "vanilla"
    explanation = client.explain(images(1), signature="custom_saliency")
    assert explanation.signature_name == "custom_saliency"
    assert explanation.method is None  # the naming rule gives this signature no method
    assert client.explain(images(1), method="smoothgrad", signature="explain_smoothgrad").method == "smoothgrad"


def test_a_method_the_model_lacks_lists_the_offered_ones_and_sends_nothing(serving):
    with ServingClient(serving.target, "multi", timeout=5.0) as client:
        with pytest.raises(ValueError, match="no explanation method 'lime'") as info:
            client.explain(images(1), method="lime")
        assert "'explain_lime'" in str(info.value)
        assert "it offers vanilla, integrated_gradients, smoothgrad." in str(info.value)
        with pytest.raises(ValueError, match="lower-case identifier; received 'Lime'"):
            client.explain(images(1), method="Lime")
    assert serving.requests == []  # the metadata was read, no Predict was sent


def test_method_and_signature_that_disagree_are_rejected(client, serving):
    with pytest.raises(ValueError, match="explain_smoothgrad.*custom_saliency|pass one of them"):
        client.explain(images(1), method="smoothgrad", signature="custom_saliency")
    assert serving.requests == []


def test_integrated_gradients_outputs_are_typed_fields_and_extras(serving):
    batch = images(2)
    with ServingClient(serving.target, "multi", timeout=5.0) as client:
        explanation = client.explain(batch, method="integrated_gradients")
        vanilla = client.explain(batch)
    np.testing.assert_allclose(explanation.attributions, batch * 0.5)
    assert explanation.attributions is explanation.extras["attributions"]
    assert explanation.approximation_error.shape == (2,)
    assert vanilla.attributions is None and vanilla.approximation_error is None


def test_methods_come_from_the_metadata_in_method_order(serving):
    with ServingClient(serving.target, "mnist", timeout=5.0) as client:
        assert client.methods() == ("vanilla",)
    with ServingClient(serving.target, "multi", timeout=5.0) as client:
        # By the naming rule, vanilla first, then by signature name: no hand-kept list.
        assert client.methods() == ("vanilla", "integrated_gradients", "smoothgrad")
        assert "custom_saliency" in client.metadata().signatures  # listed, but not a method


def test_missing_contract_output_raises_unexpected_response(client):
    with pytest.raises(sc.UnexpectedResponseError, match="saliency"):
        client.explain(images(1), signature="no_saliency")


def test_raw_predict_passes_inputs_and_output_filter(client, official, serving):
    outputs = client.raw_predict(
        {"images": images(2)}, signature="serving_default", output_filter=["logits"]
    )
    assert set(outputs) == {"logits"}
    assert list(last_request(official, serving).output_filter) == ["logits"]


def test_version_and_label_go_into_the_model_spec(serving, official):
    with ServingClient(serving.target, "mnist", version=7) as client:
        prediction = client.predict(images(1))
    assert last_request(official, serving).model_spec.version.value == 7
    assert prediction.model_version == 7
    with ServingClient(serving.target, "mnist", version_label="stable") as client:
        client.predict(images(1))
    spec = last_request(official, serving).model_spec
    assert spec.version_label == "stable"
    assert not spec.HasField("version")


def test_metadata_lists_signatures_with_names_dtypes_and_shapes(client):
    metadata = client.metadata()
    assert metadata.model_name == "mnist"
    assert set(metadata.signatures) == {"serving_default", "explain"}
    explain = metadata.signatures["explain"]
    assert explain.method_name == "tensorflow/serving/predict"
    assert set(explain.inputs) == {"images", "target_class"}
    assert explain.inputs["images"].dtype == "float32"
    assert explain.inputs["images"].shape == (None, *IMAGE_SHAPE)
    assert explain.inputs["target_class"].dtype == "int32"
    assert explain.outputs["saliency"].shape == (None, *IMAGE_SHAPE[:2])
    assert set(explain.outputs) == {
        "logits", "probabilities", "predicted_class", "target_class", "saliency",
    }


def test_status_reports_state_names_and_errors(client):
    statuses = client.status()
    assert [(s.version, s.state, s.error_code) for s in statuses] == [
        (2, "AVAILABLE", "OK"),
        (1, "END", "FAILED_PRECONDITION"),
    ]
    assert statuses[1].error_message == "unloaded after a failed load"


@pytest.mark.parametrize(
    ("model", "signature", "error", "code"),
    [
        ("mnist", "bad", sc.InvalidArgumentError, "INVALID_ARGUMENT"),
        ("missing", "explain", sc.NotFoundError, "NOT_FOUND"),
        ("broken", "explain", sc.FailedPreconditionError, "FAILED_PRECONDITION"),
    ],
)
def test_grpc_errors_map_to_exceptions_without_retry(serving, model, signature, error, code):
    with ServingClient(serving.target, model, retries=3) as client:
        with pytest.raises(error) as raised:
            client.explain(images(1), signature=signature)
    assert raised.value.code == code
    assert raised.value.details  # the server's message is kept
    assert isinstance(raised.value, sc.ServingError)
    # No retry: "mnist" answers the metadata call (the input format), then refuses Predict
    # once; the other two refuse the first call, the metadata one.
    assert serving.calls[model] == (2 if model == "mnist" else 1)


def test_unavailable_is_retried_then_succeeds(serving):
    with ServingClient(serving.target, "flaky", retries=3, timeout=5.0) as client:
        prediction = client.predict(images(1))
    assert prediction.model_name == "flaky"
    # Two UNAVAILABLE answers to the metadata call (the input format), then it and Predict succeed.
    assert serving.calls["flaky"] == 4


def test_unavailable_gives_up_after_the_retry_budget(serving):
    with ServingClient(serving.target, "down", retries=2, timeout=5.0) as client:
        with pytest.raises(sc.UnavailableError, match="server is down"):
            client.predict(images(1))
    assert serving.calls["down"] == 3


def test_deadline_bounds_the_call(serving):
    with ServingClient(serving.target, "slow", timeout=0.3, retries=3) as client:
        with pytest.raises(sc.DeadlineExceededError) as raised:
            client.status()
    assert raised.value.code == "DEADLINE_EXCEEDED"
    assert serving.calls["slow"] == 1


def test_unreachable_server_raises_unavailable_within_the_deadline():
    import socket
    import time

    with socket.socket() as probe:  # a free port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    start = time.monotonic()
    with ServingClient(f"127.0.0.1:{port}", "mnist", timeout=1.5, retries=2) as client:
        with pytest.raises((sc.UnavailableError, sc.DeadlineExceededError)):
            client.predict(images(1))
    assert time.monotonic() - start < 3.0


def test_closed_client_raises_client_closed(serving):
    client = ServingClient(serving.target, "mnist")
    client.close()
    client.close()  # idempotent
    assert client.closed
    with pytest.raises(sc.ClientClosedError, match="closed"):
        client.predict(images(1))


def test_injected_channel_is_used_and_left_open(serving):
    import grpc

    channel = grpc.insecure_channel(serving.target)
    with ServingClient("ignored:1", "mnist", channel=channel) as client:
        client.predict(images(1))
    # The caller still owns the channel: it keeps working after the client closed.
    with ServingClient("ignored:1", "mnist", channel=channel) as client:
        assert client.predict(images(1)).model_name == "mnist"
    channel.close()


def test_large_batch_exceeds_grpc_default_4mib_limit(client):
    batch = RNG.uniform(size=(24, 224, 224, 1)).astype(np.float32)  # ~4.8 MB each way
    explanation = client.explain(batch)
    assert explanation.saliency.shape == (24, 224, 224)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"version": 1, "version_label": "x"}, "not both"),
        ({"timeout": 0}, "timeout"),
        ({"retries": -1}, "retries"),
        ({"private_key": b"k"}, "both private_key and certificate_chain"),
    ],
)
def test_contradictory_options_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ServingClient("127.0.0.1:1", "mnist", **kwargs)


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (np.array([["a"]]), TypeError, "numeric"),
        (np.zeros((8, 8)), ValueError, r"\[H, W, C\]"),
        (np.zeros((0, 8, 8, 1)), ValueError, "empty"),
    ],
)
def test_bad_images_are_rejected_before_any_predict_call(client, serving, value, error, message):
    with pytest.raises(error, match=message):
        client.explain(value)
    assert serving.calls["mnist"] == 1  # the metadata call that reads the input format
    assert serving.requests == []  # no Predict was sent


@pytest.mark.parametrize(
    ("target", "error"), [(1.5, TypeError), (True, TypeError), ([0, 1], ValueError), (2**40, ValueError)]
)
def test_bad_target_classes_are_rejected(client, target, error):
    with pytest.raises(error):
        client.explain(images(3), target_class=target)


def test_tls_with_root_certificates_reaches_a_tls_server(serving):
    if serving.tls_target is None:
        pytest.skip("openssl CLI not available to make a test certificate")
    with ServingClient(
        serving.tls_target, "mnist", root_certificates=serving.tls_root_certificate
    ) as client:
        assert client.predict(images(1)).model_name == "mnist"


def test_tls_client_rejects_an_untrusted_server(serving):
    if serving.tls_target is None:
        pytest.skip("openssl CLI not available to make a test certificate")
    # Default roots do not trust the self-signed certificate: the handshake fails.
    import grpc

    with ServingClient(
        serving.tls_target, "mnist", credentials=grpc.ssl_channel_credentials(), timeout=2.0,
        retries=0,
    ) as client:
        with pytest.raises((sc.UnavailableError, sc.DeadlineExceededError)):
            client.predict(images(1))
