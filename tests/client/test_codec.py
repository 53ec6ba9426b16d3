"""The tensor codec agrees with tf.make_tensor_proto / tf.make_ndarray, both directions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from serving_client import _codec, _protos

NUMERIC_DTYPES = [
    np.float32, np.float64, np.float16, np.int8, np.int16, np.int32, np.int64,
    np.uint8, np.uint16, np.uint32, np.uint64, np.bool_, np.complex64, np.complex128,
]


def to_tf(official, proto):
    return official.tensor_pb2.TensorProto.FromString(proto.SerializeToString())


def from_tf(tf_proto):
    return _protos.message_class("tensorflow.TensorProto").FromString(
        tf_proto.SerializeToString()
    )


def assert_same(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.dtype == expected.dtype
    assert actual.shape == expected.shape
    np.testing.assert_array_equal(actual, expected)


arrays = st.sampled_from(NUMERIC_DTYPES).flatmap(
    lambda dtype: hnp.arrays(
        dtype, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4),
        elements=None if dtype is np.bool_ else {"allow_nan": False} if np.dtype(dtype).kind in "fc" else None,
    )
)


@settings(max_examples=60, deadline=None)
@given(array=arrays)
def test_encoded_arrays_decode_identically_with_tf_make_ndarray(official, array):
    proto = _codec.encode(array)
    assert proto.tensor_content or array.size == 0  # the fast path, not *_val
    assert_same(official.tf.make_ndarray(to_tf(official, proto)), array)


@settings(max_examples=60, deadline=None)
@given(array=arrays)
def test_tf_make_tensor_proto_decodes_identically(official, array):
    tf_proto = official.tf.make_tensor_proto(array)
    assert_same(_codec.decode(from_tf(tf_proto)), official.tf.make_ndarray(tf_proto))


def test_encoding_matches_tf_dtype_and_shape_fields(official):
    array = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    ours = to_tf(official, _codec.encode(array))
    theirs = official.tf.make_tensor_proto(array)
    assert ours.dtype == theirs.dtype
    assert ours.tensor_shape == theirs.tensor_shape
    assert ours.tensor_content == theirs.tensor_content


def test_big_endian_arrays_are_sent_little_endian(official):
    array = np.arange(6, dtype=">i4")
    assert_same(official.tf.make_ndarray(to_tf(official, _codec.encode(array))), array.astype("<i4"))


@pytest.mark.parametrize(
    ("dtype", "field", "values", "shape"),
    [
        ("float32", "float_val", [1.5, -2.0, 3.25, 4.0], [2, 2]),
        ("float64", "double_val", [1.5, 2.5], [2]),
        ("int32", "int_val", [1, -2, 3], [3]),
        ("uint8", "int_val", [0, 255], [2]),
        ("int16", "int_val", [-7, 7], [1, 2]),
        ("int64", "int64_val", [2**40, -3], [2]),
        ("bool", "bool_val", [True, False, True], [3]),
        ("float16", "half_val", np.float16([0.5, -1.25]).view(np.uint16).tolist(), [2]),
        ("string", "string_val", [b"a", b"bc"], [2]),
        ("uint32", "uint32_val", [2**31 + 5], [1]),
        ("uint64", "uint64_val", [2**63 + 5], [1]),
        ("complex64", "scomplex_val", [1.0, 2.0, 3.0, -4.0], [2]),
    ],
)
def test_val_fields_decode_like_tf(official, dtype, field, values, shape):
    tf = official.tf
    tf_proto = official.tensor_pb2.TensorProto(
        dtype=tf.as_dtype(dtype).as_datatype_enum, tensor_shape=tf.TensorShape(shape).as_proto()
    )
    getattr(tf_proto, field).extend(values)
    expected = tf.make_ndarray(tf_proto)
    actual = _codec.decode(from_tf(tf_proto))
    assert actual.shape == expected.shape
    assert actual.dtype == expected.dtype
    assert actual.tolist() == expected.tolist()


@pytest.mark.parametrize(
    ("dtype", "field", "values"),
    [
        ("float32", "float_val", [7.0]),
        ("int32", "int_val", [3]),
        ("int64", "int64_val", [5, 6]),  # fewer than needed: padded with the last value
        ("bool", "bool_val", [True]),
        ("string", "string_val", [b"x"]),
        ("float32", "float_val", []),  # no values at all: zeros
    ],
)
def test_short_val_fields_are_broadcast_like_tf(official, dtype, field, values):
    tf = official.tf
    tf_proto = official.tensor_pb2.TensorProto(
        dtype=tf.as_dtype(dtype).as_datatype_enum, tensor_shape=tf.TensorShape([2, 3]).as_proto()
    )
    getattr(tf_proto, field).extend(values)
    expected = tf.make_ndarray(tf_proto)
    actual = _codec.decode(from_tf(tf_proto))
    assert actual.shape == (2, 3)
    assert actual.tolist() == expected.tolist()


def test_strings_round_trip_through_tf(official):
    array = np.array([[b"a", "b\u00e9"], [b"", b"xyz"]], dtype=object)
    decoded = official.tf.make_ndarray(to_tf(official, _codec.encode(array)))
    assert decoded.tolist() == [[b"a", "b\u00e9".encode()], [b"", b"xyz"]]


def test_unsupported_dtypes_are_named_in_the_error(official):
    with pytest.raises(TypeError, match="datetime64"):
        _codec.encode(np.array(["2024-01-01"], dtype="datetime64[D]"))
    bfloat = official.tf.make_tensor_proto(np.ones(2), dtype=official.tf.bfloat16)
    with pytest.raises(TypeError, match="DT_BFLOAT16"):
        _codec.decode(from_tf(bfloat))


def test_content_that_does_not_fit_the_shape_is_rejected():
    proto = _codec.encode(np.zeros(4, np.float32))
    proto.tensor_shape.dim[0].size = 5
    with pytest.raises(ValueError, match="expected 20"):
        _codec.decode(proto)


def _proto(dtype: str, shape: tuple[int, ...], field: str, values: list) -> object:
    proto = _protos.message_class("tensorflow.TensorProto")()
    proto.dtype = _protos.enum_value("tensorflow.DataType", dtype)
    for size in shape:
        proto.tensor_shape.dim.add().size = size
    getattr(proto, field).extend(values)
    return proto


@pytest.mark.parametrize("dtype", ["DT_UINT8", "DT_INT8", "DT_UINT16", "DT_INT16"])
def test_int_val_outside_a_narrow_dtype_is_malformed_not_an_overflow(dtype):
    from serving_client import MalformedTensorError

    with pytest.raises(MalformedTensorError, match=r"output 'x': its int_val holds values in \[-70000, 70000\]"):
        _codec.decode(_proto(dtype, (2,), "int_val", [70000, -70000]), name="output 'x'")


def test_half_val_keeps_the_low_16_bits_as_tensorflow_casts():
    # 0x3C00 is 1.0; 0x13C00 is the same bits above 16 (static_cast<uint16> drops them).
    decoded = _codec.decode(_proto("DT_HALF", (2,), "half_val", [0x3C00, 0x13C00]))
    np.testing.assert_array_equal(decoded, np.float16([1.0, 1.0]))
