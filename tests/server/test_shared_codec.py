"""The server decodes with the client's codec: same values, same refusals, TF Serving's wording.

The reference for values is ``tf.make_ndarray`` on TensorFlow's own TensorProto class.
"""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from serving_client import MalformedTensorError, TensorTooLargeError, _codec


def _tf_proto(dtype: str, shape: tuple[int, ...], **fields):
    from tensorflow.core.framework import tensor_pb2, types_pb2

    proto = tensor_pb2.TensorProto(dtype=types_pb2.DataType.Value(dtype))
    proto.tensor_shape.SetInParent()
    for size in shape:
        proto.tensor_shape.dim.add().size = size
    for name, value in fields.items():
        if name == "tensor_content":
            proto.tensor_content = value
        else:
            getattr(proto, name).extend(value)
    return proto


GOOD = [
    ("DT_FLOAT", (2, 2), {"float_val": [1.0, 2.5]}),  # padded with the last value
    ("DT_INT32", (3,), {"int_val": []}),  # zeros
    ("DT_UINT8", (2,), {"int_val": [0, 255]}),
    ("DT_HALF", (2,), {"half_val": np.float16([0.5, -2.0]).view(np.uint16).tolist()}),
    ("DT_STRING", (2,), {"string_val": [b"a"]}),
    ("DT_DOUBLE", (2,), {"tensor_content": np.float64([1.5, -3.0]).tobytes()}),
]


@pytest.mark.parametrize(("dtype", "shape", "fields"), GOOD)
def test_server_and_client_decode_what_tensorflow_decodes(dtype, shape, fields):
    import tensorflow as tf

    from model_server._tensor_codec import tensor_proto_to_ndarray

    proto = _tf_proto(dtype, shape, **fields)
    expected = tf.make_ndarray(proto)
    server = tensor_proto_to_ndarray(proto, "images")
    client = _codec.decode(proto)
    for got in (server, client):
        assert got.dtype == expected.dtype and got.shape == expected.shape
        assert got.tolist() == expected.tolist()
    assert server.flags.writeable  # the session may keep the feed


BAD = [
    # (proto, the client's exception, the server's words after "tensor parsing error: images (")
    (("DT_FLOAT", (1 << 40, 4)), {"float_val": [1.0]}, TensorTooLargeError, "shape [1099511627776,4] of DT_FLOAT needs"),
    (("DT_FLOAT", (4097, 4096)), {"float_val": [1.0]}, TensorTooLargeError, "float_val has 1 values for shape [4097,4096]: padding it would take"),
    (("DT_FLOAT", (2,)), {"float_val": [1.0, 2.0, 3.0]}, MalformedTensorError, "float_val has 3 values but shape [2] holds only 2"),
    (("DT_FLOAT", (2,)), {"tensor_content": b"\0" * 5}, MalformedTensorError, "tensor_content has 5 bytes but shape [2] of DT_FLOAT needs 8"),
    (("DT_UINT8", (1,)), {"int_val": [256]}, MalformedTensorError, "int_val holds values outside the DT_UINT8 range"),
    (("DT_STRING", (1,)), {"tensor_content": b"xy"}, MalformedTensorError, "DT_STRING tensors cannot use tensor_content"),
    (("DT_FLOAT", (-1, 2)), {}, MalformedTensorError, "shape [-1,2] has a negative dimension"),
]


@pytest.mark.parametrize(("spec", "fields", "client_error", "server_words"), BAD)
def test_the_same_rule_refuses_on_both_sides_in_each_sides_words(spec, fields, client_error, server_words):
    from model_server._errors import ServingError
    from model_server._tensor_codec import tensor_proto_to_ndarray

    proto = _tf_proto(*spec, **fields)
    with pytest.raises(client_error):
        _codec.decode(proto, name="output 'saliency'")
    with pytest.raises(ServingError) as info:
        tensor_proto_to_ndarray(proto, "images")
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert str(info.value.message).startswith(f"tensor parsing error: images ({server_words}")


def test_the_server_encodes_outputs_as_tensorflows_as_proto_field():
    import tensorflow as tf

    from model_server._tensor_codec import ndarray_to_tensor_proto

    for array in (np.float32([[1.5, -2.0]]), np.int32([3]), np.float16([0.5]), np.array([b"x"], dtype=object), np.float32(2.0)):
        ours = ndarray_to_tensor_proto(array)
        assert not ours.tensor_content  # the *_val fields, as TF Serving's Predict answers
        assert ours.HasField("tensor_shape")
        np.testing.assert_array_equal(tf.make_ndarray(ours), array)
