"""The descriptor set is current, lives in a private pool, and speaks the official wire format."""

from __future__ import annotations

import numpy as np
from google.protobuf import descriptor_pool

from serving_client import _codec, _generate_descriptors, _protos


def test_checked_in_descriptor_set_matches_a_fresh_generation(official):
    checked_in = _generate_descriptors.DESCRIPTOR_PATH.read_bytes()
    assert _generate_descriptors.build_descriptor_set() == checked_in, (
        "serving_client/_descriptors.binpb is stale: run "
        "`python -m serving_client._generate_descriptors` and commit it."
    )


def test_messages_come_from_a_private_pool_not_the_default(official):
    ours = _protos.message_class("tensorflow.serving.PredictRequest")
    assert _protos.pool() is not descriptor_pool.Default()
    assert ours.DESCRIPTOR.file.pool is _protos.pool()
    assert ours is not official.predict_pb2.PredictRequest
    # Both live in this process (TF imported) without a clash.
    assert official.predict_pb2.PredictRequest.DESCRIPTOR.full_name == ours.DESCRIPTOR.full_name


def build_request():
    request = _protos.message_class("tensorflow.serving.PredictRequest")()
    request.model_spec.name = "mnist"
    request.model_spec.signature_name = "explain"
    request.model_spec.version.value = 3
    request.inputs["images"].CopyFrom(_codec.encode(np.ones((2, 4, 4, 1), np.float32)))
    request.inputs["target_class"].CopyFrom(_codec.encode(np.array([1, -1], np.int32)))
    request.output_filter.append("saliency")
    return request


def test_our_predict_request_parses_equal_in_the_official_class(official):
    ours = build_request()
    theirs = official.predict_pb2.PredictRequest()
    theirs.model_spec.name = "mnist"
    theirs.model_spec.signature_name = "explain"
    theirs.model_spec.version.value = 3
    theirs.inputs["images"].CopyFrom(
        official.tf.make_tensor_proto(np.ones((2, 4, 4, 1), np.float32))
    )
    theirs.inputs["target_class"].CopyFrom(
        official.tf.make_tensor_proto(np.array([1, -1], np.int32))
    )
    theirs.output_filter.append("saliency")
    parsed = official.predict_pb2.PredictRequest.FromString(ours.SerializeToString())
    assert parsed == theirs
    assert parsed.SerializeToString(deterministic=True) == theirs.SerializeToString(
        deterministic=True
    )


def test_official_predict_response_parses_equal_in_our_class(official):
    theirs = official.predict_pb2.PredictResponse()
    theirs.model_spec.name = "mnist"
    theirs.model_spec.version.value = 5
    theirs.model_spec.signature_name = "explain"
    theirs.outputs["saliency"].CopyFrom(official.tf.make_tensor_proto(np.eye(3, dtype=np.float32)))
    theirs.outputs["logits"].float_val.extend([1.0, 2.0])
    response_class = _protos.message_class("tensorflow.serving.PredictResponse")
    ours = response_class.FromString(theirs.SerializeToString())
    assert ours.SerializeToString(deterministic=True) == theirs.SerializeToString(
        deterministic=True
    )
    assert ours.model_spec.version.value == 5
    np.testing.assert_array_equal(_codec.decode(ours.outputs["saliency"]), np.eye(3))


def test_metadata_and_status_messages_round_trip_with_official(official):
    theirs = official.get_model_metadata_pb2.GetModelMetadataResponse()
    theirs.model_spec.name = "mnist"
    signature_map = official.get_model_metadata_pb2.SignatureDefMap()
    signature_map.signature_def["explain"].method_name = "tensorflow/serving/predict"
    theirs.metadata["signature_def"].Pack(signature_map)
    ours = _protos.message_class("tensorflow.serving.GetModelMetadataResponse").FromString(
        theirs.SerializeToString()
    )
    unpacked = _protos.message_class("tensorflow.serving.SignatureDefMap").FromString(
        ours.metadata["signature_def"].value
    )
    assert unpacked.signature_def["explain"].method_name == "tensorflow/serving/predict"

    status = official.get_model_status_pb2.GetModelStatusResponse()
    entry = status.model_version_status.add(version=4, state=30)
    entry.status.error_message = "ok"
    ours_status = _protos.message_class("tensorflow.serving.GetModelStatusResponse").FromString(
        status.SerializeToString()
    )
    assert ours_status.SerializeToString(deterministic=True) == status.SerializeToString(
        deterministic=True
    )


def test_uint8_and_image_bytes_inputs_serialize_as_tf_make_tensor_proto(official):
    from serving_client import as_image_batch

    pixels = np.random.default_rng(1).integers(0, 256, (2, 4, 4, 3), dtype=np.uint8)
    for input_format, expected in (
        ("uint8", pixels),
        ("image_bytes", as_image_batch(pixels, "image_bytes")),
    ):
        sent = as_image_batch(pixels.astype(np.int64), input_format)
        ours = _codec.encode(sent).SerializeToString(deterministic=True)
        theirs = official.tf.make_tensor_proto(expected).SerializeToString(deterministic=True)
        assert ours == theirs, input_format
    # What the graph decodes from those bytes is exactly the pixels (PNG is lossless).
    decoded = official.tf.io.decode_png(as_image_batch(pixels[0], "image_bytes")[0])
    np.testing.assert_array_equal(decoded.numpy(), pixels[0])
