"""TF Serving's REST tensor JSON (``util/json_tensor.cc``): request parsing, response writing.

Requests: ``{"signature_name": ..., "instances": [...]}`` (row format) or ``{"inputs": ...}``
(columnar). Responses: ``{"predictions": ...}`` or ``{"outputs": ...}``. Binary strings travel
as ``{"b64": "..."}``; output aliases ending in ``_bytes`` are written that way.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from tensorflow.core.framework import types_pb2

from ._errors import invalid_argument
from ._tensor_codec import dtype_name, numpy_dtype, shape_string

ROW, COLUMNAR = "row", "columnar"


def _short(value: Any) -> str:
    try:
        text = json.dumps(value)
    except RecursionError:
        return "<a value nested too deeply to print>"
    return text if len(text) <= 200 else text[:200] + "..."


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _is_named_object(value: Any) -> bool:
    return isinstance(value, dict) and not _is_b64(value)


def _dense_shape(value: Any) -> list[int]:
    # GetDenseTensorShape: follow the first element down.
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def json_to_array(value: Any, dtype: int) -> np.ndarray:
    """Convert one JSON value (scalar or nested lists) to an array of the signature's dtype.

    Raises:
        ServingError: INVALID_ARGUMENT for ragged lists, wrong JSON types, bad base64 or
            values that do not fit the dtype.
    """
    np_dtype = numpy_dtype(dtype)
    if np_dtype is None:
        raise invalid_argument(f"Conversion of JSON Value: {_short(value)} to type: {dtype_name(dtype)} is not supported")
    shape = _dense_shape(value)
    if dtype == types_pb2.DT_STRING:
        flat: list[bytes] = []
        _collect_strings(value, shape, 0, flat)
        out = np.empty(len(flat), dtype=object)
        out[:] = flat
        return out.reshape(shape)
    try:
        array = np.asarray(value)
    except ValueError as exc:
        raise invalid_argument(
            f"JSON Value: {_short(value)} is not a dense tensor: every list at one level must "
            f"have the same length (expected shape {shape_string(tuple(shape))})"
        ) from exc
    if list(array.shape) != shape:
        raise invalid_argument(
            f"JSON Value: {_short(value)} is not a dense tensor: expected shape "
            f"{shape_string(tuple(shape))}, values found at other depths"
        )
    kind = array.dtype.kind
    wanted = dtype_name(dtype).removeprefix("DT_").lower()
    if np_dtype.kind == "f":
        ok = kind in ("i", "u", "f") or (kind == "b" and array.size == 0)
    elif np_dtype.kind in ("i", "u"):
        ok = kind in ("i", "u")
    else:  # bool
        ok = kind == "b"
    if not ok and array.size:
        raise invalid_argument(
            f"JSON Value: {_short(value)} is not of expected type: {wanted}"
        )
    if np_dtype.kind in ("i", "u") and array.size:
        info = np.iinfo(np_dtype)
        if int(array.min()) < info.min or int(array.max()) > info.max:
            raise invalid_argument(f"JSON Value: {_short(value)} does not fit in type: {wanted}")
    if np_dtype.kind == "f" and array.size:
        finite = np.isfinite(array.astype(np.float64))
        if np.any(np.abs(array.astype(np.float64)[finite]) > np.finfo(np_dtype).max):
            raise invalid_argument(
                f"Cannot convert JSON value: {_short(value)} to {wanted} without loss of precision."
            )
    return array.astype(np_dtype)


def _collect_strings(value: Any, shape: list[int], level: int, out: list[bytes]) -> None:
    if isinstance(value, list):
        if level >= len(shape) or len(value) != shape[level]:
            raise invalid_argument(
                f"Encountered list at unexpected size: {len(value)} at level: {level} "
                f"expected size: {shape[level] if level < len(shape) else 'none'}"
            )
        for v in value:
            _collect_strings(v, shape, level + 1, out)
        return
    if level != len(shape):
        raise invalid_argument(
            f"JSON Value: {_short(value)} found at incorrect level: {level + 1} in the JSON DOM. "
            f"Expected at level: {len(shape)}"
        )
    if _is_b64(value):
        try:
            out.append(base64.b64decode(value["b64"], validate=True))
        except (binascii.Error, ValueError) as exc:
            raise invalid_argument("Unable to base64 decode") from exc
    elif isinstance(value, str):
        out.append(value.encode("utf-8"))
    else:
        raise invalid_argument(f"JSON Value: {_short(value)} is not of expected type: string")


_MAX_DEPTH = 70  # 64 tensor dimensions + the request's own object/list levels


def _depth_exceeds(doc: Any, limit: int) -> bool:
    # Iterative, so it cannot itself hit the recursion limit.
    stack = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(value, list):
            stack.extend((v, depth + 1) for v in value if isinstance(v, (list, dict)))
        elif isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values() if isinstance(v, (list, dict)))
    return False


def parse_predict_body(
    body: bytes, get_inputs
) -> tuple[str, dict[str, np.ndarray], str]:
    """Parse a ``:predict`` body as ``FillPredictRequestFromJson``.

    Args:
        body: the raw request body.
        get_inputs: ``signature_name -> {alias: TensorInfo}`` (REST's GetInfoMap).

    Returns:
        (signature_name as sent, inputs by alias, ROW or COLUMNAR).
    """
    if not body:
        raise invalid_argument("JSON Parse error: The document is empty")
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid_argument(f"JSON Parse error: {exc}") from exc
    except RecursionError as exc:
        raise invalid_argument(
            f"JSON Parse error: arrays/objects nested more than {_MAX_DEPTH} levels deep"
        ) from exc
    if _depth_exceeds(doc, _MAX_DEPTH):
        # A tensor has at most 64 dimensions (numpy's limit, well under TensorFlow's 254);
        # refusing deeper documents here keeps every later recursive step bounded.
        raise invalid_argument(
            f"JSON Parse error: arrays/objects nested more than {_MAX_DEPTH} levels deep"
        )
    if not isinstance(doc, dict):
        raise invalid_argument(f"JSON Value: {_short(doc)} Is not object")
    signature_name = doc.get("signature_name", "")
    if not isinstance(signature_name, str):
        raise invalid_argument(
            f"JSON Value: {_short(doc)} not formatted correctly. 'signature_name' key must be a "
            "string value."
        )
    infos = get_inputs(signature_name)
    if not infos:
        raise invalid_argument(
            f"Failed to get input map for signature: {signature_name or 'DEFAULT'}"
        )
    has_instances, has_inputs = "instances" in doc, "inputs" in doc
    if has_instances and has_inputs:
        raise invalid_argument(
            "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist"
        )
    if has_instances:
        instances = doc["instances"]
        if not isinstance(instances, list):
            raise invalid_argument("Excepting 'instances' to be an list/array")
        if not instances:
            raise invalid_argument("No values in 'instances' array")
        return signature_name, _from_instances(instances, infos), ROW
    if has_inputs:
        return signature_name, _from_inputs(doc["inputs"], infos), COLUMNAR
    raise invalid_argument("Missing 'inputs' or 'instances' key")


def _from_instances(instances: list, infos: Mapping[str, Any]) -> dict[str, np.ndarray]:
    if not _is_named_object(instances[0]) and len(infos) > 1:
        raise invalid_argument(
            "instances is a plain list, but expecting list of objects as multiple input "
            "tensors required as per tensorinfo_map"
        )
    if not _is_named_object(instances[0]):
        alias = sorted(infos)[0]
        for i, item in enumerate(instances):
            if _is_named_object(item):
                raise invalid_argument(f"Expecting value/list but got object at item {i} of input list")
        try:
            return {alias: json_to_array(instances, infos[alias].dtype)}
        except Exception as exc:
            raise invalid_argument(
                f"Failed to process 'instances' list. Error: {getattr(exc, 'message', exc)}"
            ) from exc
    names = set(infos)
    columns: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for i, item in enumerate(instances):
        if not _is_named_object(item):
            raise invalid_argument(f"Expecting object but got list at item {i} of input list")
        for key, value in item.items():
            if key not in infos:
                raise invalid_argument(
                    f"Failed to process element: {i} key: {key} of 'instances' list. Error: "
                    f"JSON object: does not have named input: {key}"
                )
            try:
                array = json_to_array(value, infos[key].dtype)
            except Exception as exc:
                raise invalid_argument(
                    f"Failed to process element: {i} key: {key} of 'instances' list. Error: "
                    f"{getattr(exc, 'message', exc)}"
                ) from exc
            previous = columns[key][0] if columns[key] else None
            if previous is not None and previous.shape != array.shape:
                raise invalid_argument(
                    f"Failed to process element: {i} key: {key} of 'instances' list. Error: "
                    f"Expecting shape {shape_string(previous.shape)} but got: "
                    f"{shape_string(array.shape)}"
                )
            columns[key].append(array)
        if set(item) != names:
            raise invalid_argument(
                f"Failed to process element: {i} of 'instances' list. JSON object: "
                f"{_short(item)} keys must be equal to: {','.join(sorted(names))}"
            )
    return {k: np.stack(v) for k, v in columns.items()}


def _from_inputs(value: Any, infos: Mapping[str, Any]) -> dict[str, np.ndarray]:
    if not _is_named_object(value):
        if len(infos) > 1:
            raise invalid_argument(
                "inputs is a plain value/list, but expecting an object as multiple input "
                "tensors required as per tensorinfo_map"
            )
        alias = sorted(infos)[0]
        return {alias: json_to_array(value, infos[alias].dtype)}
    out = {}
    for name in sorted(infos):
        if name not in value:
            raise invalid_argument(f"Missing named input: {name} in 'inputs' object.")
        out[name] = json_to_array(value[name], infos[name].dtype)
    return out


# ---- responses ----------------------------------------------------------------------------


def _jsonable(alias: str, array: np.ndarray) -> Any:
    array = np.asarray(array)
    if array.dtype.kind == "f":
        # WriteDecimal(): the shortest text that round-trips the value's own precision, so a
        # float32 0.1 is written 0.1, not 0.10000000149011612.
        flat = [_decimal(v) for v in array.ravel()]
        return np.array(flat, dtype=np.float64).reshape(array.shape).tolist() if array.ndim else flat[0]
    if array.dtype.kind in ("O", "S"):
        as_b64 = alias.endswith("_bytes")
        conv = np.vectorize(
            (lambda b: {"b64": base64.b64encode(b).decode()})
            if as_b64
            else (lambda b: b.decode("utf-8", errors="replace")),
            otypes=[object],
        )
        return conv(array).tolist() if array.size else array.tolist()
    return array.tolist()


def _decimal(value) -> float:
    if not math.isfinite(value):
        return float(value)
    return float(str(value))


def make_predict_json(outputs: Mapping[str, np.ndarray], fmt: str) -> dict[str, Any]:
    """``MakeJsonFromTensors``: ``{"predictions": ...}`` (row) or ``{"outputs": ...}``."""
    if not outputs:
        raise invalid_argument("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    if fmt == COLUMNAR:
        if len(names) == 1:
            return {"outputs": _jsonable(names[0], outputs[names[0]])}
        return {"outputs": {n: _jsonable(n, outputs[n]) for n in names}}
    batch = -1
    for n in names:
        shape = np.shape(outputs[n])
        if not shape:
            raise invalid_argument(f"Tensor name: {n} has no shape information ")
        if batch >= 0 and shape[0] != batch:
            raise invalid_argument(
                f"Tensor name: {n} has inconsistent batch size: {shape[0]} expecting: {batch}"
            )
        batch = shape[0]
    columns = {n: _jsonable(n, outputs[n]) for n in names}
    if len(names) == 1:
        return {"predictions": columns[names[0]]}
    return {"predictions": [{n: columns[n][i] for n in names} for i in range(batch)]}
