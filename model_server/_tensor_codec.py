"""TensorProto <-> numpy, with the checks that keep a malformed request from reaching a session.

Decoding follows tensorflow's ``Tensor::FromProto``: ``tensor_content`` must hold exactly the
shape's bytes; a repeated ``*_val`` field shorter than the shape is padded with its last value,
an empty one means zeros, a longer one is an error. Encoding follows ``Tensor::AsProtoField``
(the ``*_val`` fields), as TF Serving's Predict answers.
"""

from __future__ import annotations

import numpy as np
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

from ._errors import invalid_argument

# The largest tensor one request may expand to; a 1-element `float_val` with shape [1e12]
# would otherwise make us allocate terabytes.
MAX_TENSOR_BYTES = 1 << 31
# A short `*_val` list is padded to the whole shape (Tensor::FromProto): a few bytes on the
# wire would become up to MAX_TENSOR_BYTES in memory per input. Padding is allowed up to this
# size; larger tensors must send their values (or tensor_content), which the message limit bounds.
MAX_PADDED_BYTES = 64 << 20
# numpy holds at most 64 dimensions; TensorFlow allows 254, no image model needs more than 5.
MAX_RANK = 32
# Bytes per DT_STRING element counted against the limits: the object pointer numpy keeps.
_STRING_ITEMSIZE = 8

_NUMPY_BY_DTYPE: dict[int, np.dtype] = {
    types_pb2.DT_FLOAT: np.dtype(np.float32),
    types_pb2.DT_DOUBLE: np.dtype(np.float64),
    types_pb2.DT_INT32: np.dtype(np.int32),
    types_pb2.DT_INT64: np.dtype(np.int64),
    types_pb2.DT_INT16: np.dtype(np.int16),
    types_pb2.DT_INT8: np.dtype(np.int8),
    types_pb2.DT_UINT8: np.dtype(np.uint8),
    types_pb2.DT_UINT16: np.dtype(np.uint16),
    types_pb2.DT_UINT32: np.dtype(np.uint32),
    types_pb2.DT_UINT64: np.dtype(np.uint64),
    types_pb2.DT_BOOL: np.dtype(np.bool_),
    types_pb2.DT_HALF: np.dtype(np.float16),
    types_pb2.DT_STRING: np.dtype(object),
}

_DTYPE_BY_NUMPY = {
    v: k for k, v in _NUMPY_BY_DTYPE.items() if k not in (types_pb2.DT_STRING,)
}

# Which repeated field carries each dtype (tensor.proto).
_VAL_FIELD = {
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_INT16: "int_val",
    types_pb2.DT_INT8: "int_val",
    types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_UINT16: "int_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val",
    types_pb2.DT_BOOL: "bool_val",
    types_pb2.DT_HALF: "half_val",
    types_pb2.DT_STRING: "string_val",
}


# DataTypeString(): the names TF Serving prints in its messages.
_DTYPE_STRING = {
    types_pb2.DT_FLOAT: "float",
    types_pb2.DT_DOUBLE: "double",
    types_pb2.DT_INT32: "int32",
    types_pb2.DT_INT16: "int16",
    types_pb2.DT_INT8: "int8",
    types_pb2.DT_UINT8: "uint8",
    types_pb2.DT_UINT16: "uint16",
    types_pb2.DT_UINT32: "uint32",
    types_pb2.DT_UINT64: "uint64",
    types_pb2.DT_INT64: "int64",
    types_pb2.DT_BOOL: "bool",
    types_pb2.DT_STRING: "string",
    types_pb2.DT_HALF: "half",
    types_pb2.DT_BFLOAT16: "bfloat16",
    types_pb2.DT_COMPLEX64: "complex64",
    types_pb2.DT_COMPLEX128: "complex128",
}

def dtype_string(dtype: int) -> str:
    """TensorFlow's ``DataTypeString``: ``float``, ``int32``, ``complex64``, ..."""
    name = _DTYPE_STRING.get(dtype)
    if name is not None:
        return name
    try:
        return types_pb2.DataType.Name(dtype).removeprefix("DT_").lower()
    except ValueError:
        return f"unknown dtype enum ({dtype})"


def dtype_name(dtype: int) -> str:
    """``DT_FLOAT``-style name of a DataType enum value (``DT_<n>`` if unknown)."""
    try:
        return types_pb2.DataType.Name(dtype)
    except ValueError:
        return f"DT_<{dtype}>"


def shape_string(shape: tensor_shape_pb2.TensorShapeProto | tuple[int, ...]) -> str:
    """``[-1,4,4,1]`` as TF Serving prints shapes; ``[?]`` for unknown rank."""
    if isinstance(shape, tensor_shape_pb2.TensorShapeProto):
        if shape.unknown_rank:
            return "[?]"
        dims = [d.size for d in shape.dim]
    else:
        dims = list(shape)
    return "[" + ",".join(str(d) for d in dims) + "]"


def numpy_dtype(dtype: int) -> np.dtype | None:
    """The numpy dtype for a DataType, or None if this server cannot decode it."""
    return _NUMPY_BY_DTYPE.get(dtype)


def tensor_proto_to_ndarray(proto: tensor_pb2.TensorProto, alias: str) -> np.ndarray:
    """Decode a request tensor without trusting any of its fields.

    Args:
        proto: the request's TensorProto.
        alias: the signature input alias, for error messages.

    Returns:
        The decoded array (``object`` array of ``bytes`` for DT_STRING).

    Raises:
        ServingError: INVALID_ARGUMENT, starting ``tensor parsing error: <alias>`` like
            tensorflow's ``GetInputValues``, followed by what was wrong.
    """

    def bad(why: str):
        return invalid_argument(f"tensor parsing error: {alias} ({why})")

    np_dtype = _NUMPY_BY_DTYPE.get(proto.dtype)
    if np_dtype is None:
        raise bad(f"dtype {dtype_name(proto.dtype)} is not supported by this server")
    if proto.tensor_shape.unknown_rank:
        raise bad("tensor_shape has unknown_rank; a request tensor needs a concrete shape")
    if len(proto.tensor_shape.dim) > MAX_RANK:
        raise bad(
            f"tensor_shape has {len(proto.tensor_shape.dim)} dimensions; this server accepts "
            f"at most {MAX_RANK}"
        )
    shape = tuple(int(d.size) for d in proto.tensor_shape.dim)
    if any(d < 0 for d in shape):
        raise bad(f"shape {shape_string(shape)} has a negative dimension")
    count = 1
    for d in shape:
        count *= d
    itemsize = np_dtype.itemsize if proto.dtype != types_pb2.DT_STRING else _STRING_ITEMSIZE
    if count * itemsize > MAX_TENSOR_BYTES:
        raise bad(
            f"shape {shape_string(shape)} of {dtype_name(proto.dtype)} needs "
            f"{count * itemsize} bytes; the limit is {MAX_TENSOR_BYTES}"
        )

    if proto.tensor_content:
        if proto.dtype == types_pb2.DT_STRING:
            raise bad("DT_STRING tensors cannot use tensor_content; use string_val")
        expected = count * np_dtype.itemsize
        if len(proto.tensor_content) != expected:
            raise bad(
                f"tensor_content has {len(proto.tensor_content)} bytes but shape "
                f"{shape_string(shape)} of {dtype_name(proto.dtype)} needs {expected}"
            )
        return np.frombuffer(proto.tensor_content, dtype=np_dtype).reshape(shape).copy()

    field = _VAL_FIELD[proto.dtype]
    values = getattr(proto, field)
    n = len(values)
    if n > count:
        raise bad(
            f"{field} has {n} values but shape {shape_string(shape)} holds only {count}"
        )
    if n < count and count * itemsize > MAX_PADDED_BYTES:
        raise bad(
            f"{field} has {n} values for shape {shape_string(shape)}: padding it would take "
            f"{count * itemsize} bytes, over the {MAX_PADDED_BYTES}-byte limit for padded "
            "values; send every value (or tensor_content)"
        )
    if proto.dtype == types_pb2.DT_STRING:
        flat = np.empty(count, dtype=object)
        flat[:n] = list(values)
        flat[n:] = values[-1] if n else b""
        return flat.reshape(shape)
    if proto.dtype == types_pb2.DT_HALF:
        # half_val holds the float16 bits in an int32; keep the low 16 bits as TensorFlow's
        # static_cast<uint16> does (out-of-range values must not raise OverflowError here).
        raw = (np.asarray(values, dtype=np.int64) & 0xFFFF).astype(np.uint16).view(np.float16)
    else:
        raw = np.asarray(values, dtype=np_dtype if field != "int_val" else np.int64)
        if field == "int_val":
            info = np.iinfo(np_dtype)
            if n and (raw.min() < info.min or raw.max() > info.max):
                raise bad(f"int_val holds values outside the {dtype_name(proto.dtype)} range")
            raw = raw.astype(np_dtype)
    if n == count:
        return raw.reshape(shape)
    # Tensor::FromProto pads a short value list with its last value (zeros if empty).
    out = np.full(count, raw[-1] if n else 0, dtype=np_dtype)
    out[:n] = raw
    return out.reshape(shape)


def check_against_tensor_info(
    array: np.ndarray, dtype: int, info, alias: str, arg_index: int = 0
) -> None:
    """Refuse a decoded input whose dtype or shape the signature's TensorInfo rules out.

    Args:
        array: the decoded input.
        dtype: the request tensor's DataType.
        info: the signature input's ``TensorInfo``.
        alias: the input alias, for messages.
        arg_index: the input's position among the session's feeds (TensorFlow's ``arg[i]``).

    Raises:
        ServingError: INVALID_ARGUMENT naming the expected and the received dtype or shape.
    """
    if dtype != info.dtype:
        # The first sentence is the session's own (DirectSession), which TF Serving returns.
        raise invalid_argument(
            f"Expects arg[{arg_index}] to be {dtype_string(info.dtype)} but {dtype_string(dtype)} "
            f"is provided: input \"{alias}\" expects dtype {dtype_name(info.dtype)} (per the "
            f"signature) but the request sent {dtype_name(dtype)}"
        )
    expected = info.tensor_shape
    if expected.unknown_rank:
        return
    dims = [d.size for d in expected.dim]
    ok = len(dims) == array.ndim and all(e < 0 or e == a for e, a in zip(dims, array.shape, strict=False))
    if not ok:
        raise invalid_argument(
            f"input \"{alias}\" expects shape {shape_string(expected)} (per the signature; -1 "
            f"is any size) but the request sent shape {shape_string(array.shape)}"
        )


def ndarray_to_tensor_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
    """Encode like ``Tensor::AsProtoField``: dtype, shape and the ``*_val`` field."""
    array = np.asarray(array)
    proto = tensor_pb2.TensorProto()
    if array.dtype.kind in ("O", "S", "U"):
        proto.dtype = types_pb2.DT_STRING
        flat = [v if isinstance(v, bytes) else str(v).encode() for v in array.ravel()]
        proto.string_val.extend(flat)
    else:
        dtype = _DTYPE_BY_NUMPY.get(array.dtype)
        if dtype is None:
            raise invalid_argument(f"cannot encode output of numpy dtype {array.dtype}")
        proto.dtype = dtype
        field = getattr(proto, _VAL_FIELD[dtype])
        flat = array.ravel()
        if dtype == types_pb2.DT_HALF:
            field.extend(flat.view(np.uint16).astype(np.int32).tolist())
        else:
            field.extend(flat.tolist())
    # AsProtoField always writes tensor_shape, so a scalar's is present and empty.
    proto.tensor_shape.SetInParent()
    for d in array.shape:
        proto.tensor_shape.dim.add().size = int(d)
    return proto
