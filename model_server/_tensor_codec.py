"""The server's side of the one tensor codec (``serving_client._codec``): TF Serving's wording.

Decoding and encoding are the shared codec's, with the same limits as the client's defaults;
this module only words its refusals as TF Serving does (INVALID_ARGUMENT, ``tensor parsing
error: <alias> (...)``), builds TensorFlow's own ``TensorProto`` class, and checks a decoded
input against the signature's ``TensorInfo``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tensorflow.core.framework import tensor_pb2

from serving_client._codec import (
    DEFAULT_LIMITS,
    MAX_RANK,
    Wording,
    decode,
    dtype_string,
    encode,
    numpy_dtype,
    shape_string,
)
from serving_client._codec import enum_name as dtype_name
from serving_client.contract import DataType

from ._errors import ServingError, invalid_argument

__all__ = [
    "MAX_PADDED_BYTES",
    "MAX_RANK",
    "MAX_TENSOR_BYTES",
    "check_against_tensor_info",
    "dtype_name",
    "dtype_string",
    "ndarray_to_tensor_proto",
    "numpy_dtype",
    "shape_string",
    "tensor_proto_to_ndarray",
]

# The largest tensor one request may expand to; a 1-element `float_val` with shape [1e12]
# would otherwise make us allocate terabytes.
MAX_TENSOR_BYTES = DEFAULT_LIMITS.max_tensor_bytes
# A short `*_val` list is padded to the whole shape (Tensor::FromProto): a few bytes on the
# wire would become up to MAX_TENSOR_BYTES in memory per input. Padding is allowed up to this
# size; larger tensors must send their values (or tensor_content), which the message limit bounds.
MAX_PADDED_BYTES = DEFAULT_LIMITS.max_padded_bytes

# The request dtypes this server decodes (complex inputs are refused before any graph sees them).
_REQUEST_DTYPES = frozenset(
    {
        DataType.DT_FLOAT,
        DataType.DT_DOUBLE,
        DataType.DT_INT32,
        DataType.DT_INT64,
        DataType.DT_INT16,
        DataType.DT_INT8,
        DataType.DT_UINT8,
        DataType.DT_UINT16,
        DataType.DT_UINT32,
        DataType.DT_UINT64,
        DataType.DT_BOOL,
        DataType.DT_HALF,
        DataType.DT_STRING,
    }
)


class _TFServingWording(Wording):
    """Refusals as INVALID_ARGUMENT ``tensor parsing error: <alias> (<why>)``."""

    def _bad(self, why: str) -> ServingError:
        # The first words are tensorflow's GetInputValues'; the parenthesis says what was wrong.
        return invalid_argument(f"tensor parsing error: {self.name} ({why})")

    def unsupported_dtype(self, dtype: int) -> Exception:
        return self._bad(f"dtype {dtype_name(dtype)} is not supported by this server")

    def unknown_rank(self) -> Exception:
        return self._bad("tensor_shape has unknown_rank; a request tensor needs a concrete shape")

    def too_deep(self, rank: int) -> Exception:
        return self._bad(f"tensor_shape has {rank} dimensions; this server accepts at most {MAX_RANK}")

    def negative_dim(self, shape: tuple[int, ...]) -> Exception:
        return self._bad(f"shape {shape_string(shape)} has a negative dimension")

    def too_large(self, shape: tuple[int, ...], dtype: int, declared: int, limit: int) -> Exception:
        return self._bad(
            f"shape {shape_string(shape)} of {dtype_name(dtype)} needs {declared} bytes; the limit is {limit}"
        )

    def string_content(self) -> Exception:
        return self._bad("DT_STRING tensors cannot use tensor_content; use string_val")

    def content_size(self, shape: tuple[int, ...], dtype: int, received: int, expected: int) -> Exception:
        return self._bad(
            f"tensor_content has {received} bytes but shape {shape_string(shape)} of "
            f"{dtype_name(dtype)} needs {expected}"
        )

    def too_many_values(self, field: str, shape: tuple[int, ...], received: int, elements: int) -> Exception:
        return self._bad(f"{field} has {received} values but shape {shape_string(shape)} holds only {elements}")

    def padded_too_large(
        self, field: str, shape: tuple[int, ...], dtype: int, received: int, declared: int, limit: int
    ) -> Exception:
        return self._bad(
            f"{field} has {received} values for shape {shape_string(shape)}: padding it would take "
            f"{declared} bytes, over the {limit}-byte limit for padded values; send every value "
            "(or tensor_content)"
        )

    def int_out_of_range(self, dtype: int, low: int, high: int) -> Exception:
        return self._bad(f"int_val holds values outside the {dtype_name(dtype)} range")


def tensor_proto_to_ndarray(proto: Any, alias: str) -> np.ndarray:
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
    array = decode(proto, wording=_TFServingWording(alias), dtypes=_REQUEST_DTYPES)
    # The session may keep the feed; never hand it a view of the request's bytes.
    return array if array.flags.writeable else array.copy()


def check_against_tensor_info(
    array: np.ndarray, dtype: int, info: Any, alias: str, arg_index: int = 0
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
    """Encode like ``Tensor::AsProtoField``: dtype, shape and the ``*_val`` field.

    Raises:
        ServingError: INVALID_ARGUMENT if the output's dtype has no TensorFlow equivalent.
    """
    try:
        return encode(array, fields=True, message_class=tensor_pb2.TensorProto)
    except TypeError as exc:
        raise invalid_argument(f"cannot encode output of numpy dtype {np.asarray(array).dtype}: {exc}") from exc
