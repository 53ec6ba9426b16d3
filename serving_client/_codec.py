"""numpy ⇄ ``tensorflow.TensorProto``, without TensorFlow.

Encoding uses ``tensor_content`` (one contiguous little-endian buffer) for numeric arrays, the
fast path TF Serving also uses. Decoding follows ``tf.make_ndarray`` (and TensorFlow's C++
``Tensor::FromProto``) for every proto they accept: ``tensor_content`` when present, else the
typed ``*_val`` field, where fewer values than elements are padded with the last value (so a
single value is broadcast to the full shape) and no values mean zeros. What they accept is
bounded here: a proto declares its shape, and a shape of ``[1 << 40]`` with one ``float_val``
costs a few bytes on the wire, so the declared size is checked against :class:`DecodeLimits`
*before* anything is allocated, and more values than the shape holds is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _protos
from ._exceptions import MalformedTensorError, TensorTooLargeError

# numpy holds at most 64 dimensions; no image model's tensor has more than a handful.
MAX_RANK = 32
# Bytes a DT_STRING element costs numpy besides its bytes: the object pointer.
_STRING_ITEMSIZE = 8
_MiB = 1 << 20


@dataclass(frozen=True)
class DecodeLimits:
    """How large a tensor :func:`decode` may build.

    Attributes:
        max_tensor_bytes: the largest decoded tensor (declared elements × item size).
        max_padded_bytes: the largest tensor built by padding a short ``*_val`` list (or
            zeros for none): TensorFlow's broadcast rule turns a few wire bytes into this
            much memory, so it is bounded apart from (and more tightly than) tensors whose
            values were all sent.
    """

    max_tensor_bytes: int = 2048 * _MiB
    max_padded_bytes: int = 64 * _MiB

    def __post_init__(self) -> None:
        for key in ("max_tensor_bytes", "max_padded_bytes"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"DecodeLimits.{key} must be an int >= 0; got {value!r}.")

    @classmethod
    def for_message_bytes(cls, max_message_bytes: int) -> DecodeLimits:
        """Limits for a client whose messages are at most ``max_message_bytes``.

        A tensor whose values were all sent decodes to at most 8 bytes per message byte (a
        one-byte varint of ``int64_val``), memory protobuf has already spent on parsing it;
        so ``max_tensor_bytes`` is 8 × the message size and only refuses declared shapes no
        such message can fill. Padding is bounded by a quarter of the message size (64 MiB
        for the 256 MiB default).
        """
        return cls(max_tensor_bytes=8 * max_message_bytes, max_padded_bytes=max_message_bytes // 4)


DEFAULT_LIMITS = DecodeLimits()

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
# Dtypes that share the int32 `int_val` field: a value outside their range is malformed.
_NARROW_INT_VAL = frozenset({"DT_INT8", "DT_INT16", "DT_UINT8", "DT_UINT16"})

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


def decode(proto: Any, *, name: str = "tensor", limits: DecodeLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Decode a ``tensorflow.TensorProto`` (any pool's class) into a numpy array.

    Args:
        proto: a TensorProto message.
        name: what the tensor is, for messages (e.g. ``"output 'saliency'"``).
        limits: the largest tensors to build; checked on the declared shape before any
            allocation.

    Returns:
        An array with the proto's shape and the matching numpy dtype (``object`` holding
        ``bytes`` for DT_STRING).

    Raises:
        TypeError: if the dtype has no numpy equivalent (e.g. DT_BFLOAT16, quantized types).
        MalformedTensorError: (a ``ValueError`` and an ``UnexpectedResponseError``) if the
            shape is unknown or too deep, or the content does not match the shape.
        TensorTooLargeError: (likewise) if the declared size exceeds ``limits``.
    """
    if proto.tensor_shape.unknown_rank:
        raise MalformedTensorError(
            f"Cannot decode {name}: its TensorProto has unknown rank; expected a fully known shape."
        )
    if len(proto.tensor_shape.dim) > MAX_RANK:
        raise MalformedTensorError(
            f"Cannot decode {name}: its shape has {len(proto.tensor_shape.dim)} dimensions; "
            f"expected at most {MAX_RANK}."
        )
    shape = tuple(int(dim.size) for dim in proto.tensor_shape.dim)
    if any(size < 0 for size in shape):
        raise MalformedTensorError(
            f"Cannot decode {name}: its TensorProto has unknown dimensions; got shape {shape}."
        )
    # Python ints: a product of declared sizes must not wrap around as int64 would.
    num_elements = 1
    for size in shape:
        num_elements *= size
    dtype_enum = _protos.enum_name(_DATA_TYPE, proto.dtype)

    if dtype_enum == "DT_STRING":
        values = proto.string_val
        _check_size(name, shape, dtype_enum, num_elements, _STRING_ITEMSIZE, len(values), limits)
        strings = np.empty(num_elements, dtype=object)
        if values:
            strings[: len(values)] = list(values)
            strings[len(values) :] = values[-1]
        else:
            strings[:] = b""
        return strings.reshape(shape)

    dtype = _TF_TO_NUMPY.get(dtype_enum)
    if dtype is None:
        raise TypeError(
            f"Cannot decode {name} of dtype {dtype_enum}: it has no numpy equivalent "
            "without TensorFlow."
        )
    if proto.tensor_content:
        content = proto.tensor_content
        _check_size(name, shape, dtype_enum, num_elements, dtype.itemsize, None, limits)
        if len(content) != num_elements * dtype.itemsize:
            raise MalformedTensorError(
                f"Cannot decode {name}: tensor_content holds {len(content)} bytes; expected "
                f"{num_elements * dtype.itemsize} for shape {shape} of {dtype.name}."
            )
        return np.frombuffer(content, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)

    raw = getattr(proto, _VAL_FIELD[dtype_enum])
    # Complex values come as (real, imag) pairs.
    per_element = 2 if dtype_enum in ("DT_COMPLEX64", "DT_COMPLEX128") else 1
    _check_size(name, shape, dtype_enum, num_elements, dtype.itemsize, len(raw) // per_element, limits)
    if dtype_enum == "DT_HALF":
        # half_val holds the IEEE half bit patterns in int32 slots; keep the low 16 bits as
        # TensorFlow's static_cast<uint16> does (a wider value must not raise OverflowError).
        bits = np.fromiter(raw, dtype=np.int64, count=len(raw)) & 0xFFFF
        values = bits.astype(np.uint16).view(np.float16)
    elif dtype_enum in _NARROW_INT_VAL:
        wide = np.fromiter(raw, dtype=np.int64, count=len(raw))
        info = np.iinfo(dtype)
        if wide.size and (wide.min() < info.min or wide.max() > info.max):
            raise MalformedTensorError(
                f"Cannot decode {name}: its int_val holds values in [{wide.min()}, {wide.max()}]; "
                f"expected {dtype.name} values in [{info.min}, {info.max}]."
            )
        values = wide.astype(dtype)
    elif per_element == 2:
        # Interleaved (real, imag) pairs; a view keeps inf/nan parts exact, arithmetic would not.
        part = np.float32 if dtype_enum == "DT_COMPLEX64" else np.float64
        values = np.fromiter(raw, dtype=part, count=len(raw) // 2 * 2).view(dtype)
    else:
        values = np.fromiter(raw, dtype=dtype, count=len(raw))
    if values.size == num_elements:
        return values.reshape(shape)
    # Tensor::FromProto / tf.make_ndarray: pad with the last value, zeros when there is none.
    out = np.full(num_elements, values[-1] if values.size else 0, dtype=dtype)
    out[: values.size] = values
    return out.reshape(shape)


def _check_size(
    name: str,
    shape: tuple[int, ...],
    dtype_enum: str,
    num_elements: int,
    itemsize: int,
    num_values: int | None,
    limits: DecodeLimits,
) -> None:
    """Refuse, before allocating, a declared size the limits or the values sent rule out."""
    declared = num_elements * itemsize
    if declared > limits.max_tensor_bytes:
        raise TensorTooLargeError(
            f"Refusing to decode {name}: shape {list(shape)} of {dtype_enum} declares "
            f"{declared} bytes; this client decodes at most {limits.max_tensor_bytes} bytes "
            "per tensor (ServingClient max_message_bytes)."
        )
    if num_values is None:
        return
    if num_values > num_elements:
        raise MalformedTensorError(
            f"Cannot decode {name}: it holds {num_values} values; its shape {list(shape)} "
            f"holds only {num_elements}."
        )
    if num_values < num_elements and declared > limits.max_padded_bytes:
        raise TensorTooLargeError(
            f"Refusing to decode {name}: {num_values} value(s) for shape {list(shape)} of "
            f"{dtype_enum}; padding them as TensorFlow does would build {declared} bytes, over "
            f"this client's {limits.max_padded_bytes}-byte limit for padded tensors. A server "
            "must send every value of a tensor that large."
        )


def _to_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"Cannot encode {type(value).__name__} as a TF string; expected bytes or str.")
