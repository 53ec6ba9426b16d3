"""numpy ⇄ ``tensorflow.TensorProto``, without TensorFlow.

Encoding uses ``tensor_content`` (one contiguous little-endian buffer) for numeric arrays, the
fast path TF Serving also uses. Decoding follows ``tf.make_ndarray`` exactly: ``tensor_content``
when present, else the typed ``*_val`` field, where fewer values than elements are padded with
the last value (so a single value is broadcast to the full shape) and no values mean zeros.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _protos

_DATA_TYPE = "tensorflow.DataType"

# numpy dtype → TF DataType name. bfloat16 and the quantized types have no numpy dtype.
_NUMPY_TO_TF = {
    np.dtype(np.float32): "DT_FLOAT",
    np.dtype(np.float64): "DT_DOUBLE",
    np.dtype(np.float16): "DT_HALF",
    np.dtype(np.int8): "DT_INT8",
    np.dtype(np.int16): "DT_INT16",
    np.dtype(np.int32): "DT_INT32",
    np.dtype(np.int64): "DT_INT64",
    np.dtype(np.uint8): "DT_UINT8",
    np.dtype(np.uint16): "DT_UINT16",
    np.dtype(np.uint32): "DT_UINT32",
    np.dtype(np.uint64): "DT_UINT64",
    np.dtype(np.bool_): "DT_BOOL",
    np.dtype(np.complex64): "DT_COMPLEX64",
    np.dtype(np.complex128): "DT_COMPLEX128",
}
_TF_TO_NUMPY = {name: dtype for dtype, name in _NUMPY_TO_TF.items()}

# TF DataType name → the repeated field ``tf.make_ndarray`` reads when tensor_content is empty.
_VAL_FIELD = {
    "DT_FLOAT": "float_val",
    "DT_DOUBLE": "double_val",
    "DT_HALF": "half_val",
    "DT_INT8": "int_val",
    "DT_INT16": "int_val",
    "DT_INT32": "int_val",
    "DT_UINT8": "int_val",
    "DT_UINT16": "int_val",
    "DT_INT64": "int64_val",
    "DT_UINT32": "uint32_val",
    "DT_UINT64": "uint64_val",
    "DT_BOOL": "bool_val",
    "DT_COMPLEX64": "scomplex_val",
    "DT_COMPLEX128": "dcomplex_val",
    "DT_STRING": "string_val",
}


def dtype_name(tf_dtype: int) -> str:
    """Return a readable name for a TF DataType number: ``"float32"`` or e.g. ``"DT_BFLOAT16"``."""
    name = _protos.enum_name(_DATA_TYPE, tf_dtype)
    if name in _TF_TO_NUMPY:
        return _TF_TO_NUMPY[name].name
    return "string" if name == "DT_STRING" else name


def encode(array: Any) -> Any:
    """Encode an array-like as a ``tensorflow.TensorProto``.

    Args:
        array: anything ``np.asarray`` accepts. Numeric and bool arrays go into
            ``tensor_content``; ``bytes``/``str`` (or object arrays of them) into ``string_val``.

    Returns:
        A ``tensorflow.TensorProto`` message from the client's private descriptor pool.

    Raises:
        TypeError: if the dtype has no TensorFlow equivalent.
    """
    array = np.asarray(array)
    proto = _protos.message_class("tensorflow.TensorProto")()
    for size in array.shape:
        proto.tensor_shape.dim.add().size = size

    if array.dtype.kind in "SUO":
        proto.dtype = _protos.enum_value(_DATA_TYPE, "DT_STRING")
        proto.string_val.extend(_to_bytes(value) for value in array.reshape(-1))
        return proto

    # By name, so a big-endian array finds its dtype too.
    name = _NUMPY_TO_TF.get(np.dtype(array.dtype.name)) if array.dtype.kind in "biufc" else None
    if name is None:
        supported = ", ".join(sorted(dtype.name for dtype in _NUMPY_TO_TF))
        raise TypeError(
            f"Cannot encode an array of dtype {array.dtype} as a TensorProto; "
            f"expected one of {supported}, bytes or str."
        )
    proto.dtype = _protos.enum_value(_DATA_TYPE, name)
    # TF reads tensor_content as little-endian, C-ordered memory.
    little_endian = array.astype(_TF_TO_NUMPY[name].newbyteorder("<"), copy=False)
    proto.tensor_content = np.ascontiguousarray(little_endian).tobytes()
    return proto


def decode(proto: Any) -> np.ndarray:
    """Decode a ``tensorflow.TensorProto`` (any pool's class) into a numpy array.

    Args:
        proto: a TensorProto message.

    Returns:
        An array with the proto's shape and the matching numpy dtype (``object`` holding
        ``bytes`` for DT_STRING).

    Raises:
        TypeError: if the dtype has no numpy equivalent (e.g. DT_BFLOAT16, quantized types).
        ValueError: if the shape is unknown or the content does not match the shape.
    """
    if proto.tensor_shape.unknown_rank:
        raise ValueError("Cannot decode a TensorProto of unknown rank; expected a fully known shape.")
    shape = tuple(dim.size for dim in proto.tensor_shape.dim)
    if any(size < 0 for size in shape):
        raise ValueError(f"Cannot decode a TensorProto with unknown dimensions; got shape {shape}.")
    num_elements = int(np.prod(shape, dtype=np.int64))
    name = _protos.enum_name(_DATA_TYPE, proto.dtype)

    if name == "DT_STRING":
        values = list(proto.string_val)
        if 0 < len(values) < num_elements:
            values.extend([values[-1]] * (num_elements - len(values)))
        if not values:
            values = [b""] * num_elements
        strings = np.empty(len(values), dtype=object)
        strings[:] = values
        return _reshape(strings, shape, name)

    dtype = _TF_TO_NUMPY.get(name)
    if dtype is None:
        raise TypeError(
            f"Cannot decode a TensorProto of dtype {name}: it has no numpy equivalent "
            "without TensorFlow."
        )
    if proto.tensor_content:
        content = proto.tensor_content
        if len(content) != num_elements * dtype.itemsize:
            raise ValueError(
                f"TensorProto tensor_content holds {len(content)} bytes; expected "
                f"{num_elements * dtype.itemsize} for shape {shape} of {dtype.name}."
            )
        return np.frombuffer(content, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)

    raw = getattr(proto, _VAL_FIELD[name])
    if name == "DT_HALF":
        # half_val holds the IEEE half bit patterns in int32 slots.
        values = np.fromiter(raw, dtype=np.uint16, count=len(raw)).view(np.float16)
    elif name in ("DT_COMPLEX64", "DT_COMPLEX128"):
        # Interleaved (real, imag) pairs; a view keeps inf/nan parts exact, arithmetic would not.
        part = np.float32 if name == "DT_COMPLEX64" else np.float64
        values = np.fromiter(raw, dtype=part, count=len(raw) // 2 * 2).view(dtype)
    else:
        values = np.fromiter(raw, dtype=dtype, count=len(raw))
    if values.size == 0:
        return np.zeros(shape, dtype)
    if values.size < num_elements:
        values = np.pad(values, (0, num_elements - values.size), mode="edge")
    return _reshape(values, shape, name)


def _reshape(values: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    if values.size != int(np.prod(shape, dtype=np.int64)):
        raise ValueError(
            f"TensorProto of {name} has {values.size} values; expected "
            f"{int(np.prod(shape, dtype=np.int64))} for shape {shape}."
        )
    return values.reshape(shape)


def _to_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"Cannot encode {type(value).__name__} as a TF string; expected bytes or str.")
