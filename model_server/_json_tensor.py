"""TF Serving's REST tensor JSON (``util/json_tensor.cc``): request parsing, response writing.

Requests: ``{"signature_name": ..., "instances": [...]}`` (row format) or ``{"inputs": ...}``
(columnar). Responses: ``{"predictions": ...}`` or ``{"outputs": ...}``. Binary strings travel
as ``{"b64": "..."}``; output aliases ending in ``_bytes`` are written that way.

The steps and their messages follow ``json_tensor.cc`` function for function
(``ParseJson``, ``FillTensorProto``, ``AddInstanceItem``, ``WriteDecimal``, ...), and are checked
against the vectors of TF Serving's ``json_tensor_test.cc`` (``tests/server/tfserving_vectors``).
Deliberate differences are listed in the README ("Differences from TF Serving").
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from typing import Any

import grpc
import numpy as np
from tensorflow.core.framework import types_pb2

from serving_client._codec import MAX_RANK, dtype_string, shape_string

from ._errors import ServingError, invalid_argument

ROW, COLUMNAR = "row", "columnar"

# TF Serving parses with rapidjson's iterative parser and has no nesting bound. Python's json
# parser recurses, so the document's nesting is bounded here, before parsing: 256 levels hold
# any tensor TensorFlow can represent (rank <= 254) plus the request's object and list.
MAX_JSON_DEPTH = 256

_NOT_STRUCTURAL = bytes(b for b in range(256) if b not in b'[]{}"')
_JSON_WS = b" \t\n\r"

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_UINT32 = (0, 2**32 - 1)
_UINT64 = (0, 2**64 - 1)

# AddValueToTensor: which JSON values each dtype takes (rapidjson IsNumber/IsInt/IsInt64/...),
# the integer range of the rapidjson test, and the numpy dtype the values are stored as.
# DT_INT8/INT16/UINT8 take any int32 (TF Serving stores it in int_val); we additionally refuse
# values outside the dtype, where TensorFlow would silently truncate.
_INPUT_KINDS: dict[int, tuple[tuple[type, ...], tuple[int, int] | None, np.dtype]] = {
    types_pb2.DT_FLOAT: ((int, float), None, np.dtype(np.float32)),
    types_pb2.DT_DOUBLE: ((int, float), None, np.dtype(np.float64)),
    types_pb2.DT_INT32: ((int,), _INT32, np.dtype(np.int32)),
    types_pb2.DT_INT16: ((int,), _INT32, np.dtype(np.int16)),
    types_pb2.DT_INT8: ((int,), _INT32, np.dtype(np.int8)),
    types_pb2.DT_UINT8: ((int,), _INT32, np.dtype(np.uint8)),
    types_pb2.DT_INT64: ((int,), _INT64, np.dtype(np.int64)),
    types_pb2.DT_UINT32: ((int,), _UINT32, np.dtype(np.uint32)),
    types_pb2.DT_UINT64: ((int,), _UINT64, np.dtype(np.uint64)),
    types_pb2.DT_BOOL: ((bool,), None, np.dtype(np.bool_)),
    types_pb2.DT_STRING: ((str,), None, np.dtype(object)),
}


# ---- debug strings (JsonValueToDebugString) ---------------------------------------------

_DEBUG_LIMIT = 256  # kMaxJsonDebugStringBytes


def _debug_number(value: int | float) -> str:
    if isinstance(value, int):
        return str(value)
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    text = repr(value)
    return text


def debug_string(value: Any) -> str:
    """``JsonValueToDebugString``: rapidjson's pretty writer, arrays on one line, cut near 256
    bytes. Iterative and lazy, so neither a deep nor a huge value costs more than the cut."""
    out: list[str] = []
    size = 0
    # Frames: [items, next index, indent, is_object]; text is emitted as the walk reaches it.
    stack: list[list] = []
    pending: Any = value
    have_pending = True
    while size < _DEBUG_LIMIT:
        if have_pending:
            v, indent = pending, len(stack)
            have_pending = False
            if isinstance(v, list) and v:
                text = "["
                stack.append([v, 0, indent, False])
            elif isinstance(v, dict) and v:
                text = "{"
                stack.append([list(v.items()), 0, indent, True])
            elif isinstance(v, list):
                text = "[]"
            elif isinstance(v, dict):
                text = "{}"
            elif isinstance(v, bool):
                text = "true" if v else "false"
            elif v is None:
                text = "null"
            elif isinstance(v, (int, float)):
                text = _debug_number(v)
            else:
                text = json.dumps(v, ensure_ascii=False)
        elif not stack:
            break
        else:
            frame = stack[-1]
            items, i, indent, is_object = frame
            if i == len(items):
                stack.pop()
                text = ("\n" + " " * (4 * indent) + "}") if is_object else "]"
            else:
                frame[1] += 1
                if is_object:
                    key, pending = items[i]
                    text = ("," if i else "") + "\n" + " " * (4 * (indent + 1)) + json.dumps(key) + ": "
                else:
                    pending = items[i]
                    text = ", " if i else ""
                have_pending = True
        out.append(text)
        size += len(text.encode("utf-8", "surrogatepass"))
    return "".join(out)


def _json_type(value: Any) -> str:
    # JsonTypeString()
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def _status_string(exc: ServingError) -> str:
    # absl::Status::ToString(): "INVALID_ARGUMENT: message", as TF Serving nests errors.
    return f"{exc.code.name}: {exc.message}"


def _type_error(value: Any, dtype: int) -> ServingError:
    return invalid_argument(
        f"JSON Value: {debug_string(value)} Type: {_json_type(value)} is not of expected type: "
        f"{dtype_string(dtype)}"
    )


# ---- parsing ----------------------------------------------------------------------------


def _nesting_depth(body: bytes) -> int:
    # The deepest bracket outside strings, with C-speed bytes operations only (bodies may be
    # tens of megabytes): drop escaped backslashes, then escaped quotes, keep only quotes and
    # brackets, drop what lies between quote pairs, then the running depth's maximum.
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(unescaped.translate(None, _NOT_STRUCTURAL).split(b'"')[::2])
    if not outside:
        return 0
    codes = np.frombuffer(outside, dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1).astype(np.int32)
    return int(np.cumsum(steps).max())


def parse_json(body: bytes) -> Any:
    """``ParseJson``: the top-level value, which must be an object.

    As rapidjson's ``kParseStopWhenDoneFlag``, bytes after the first complete JSON value are
    ignored; ``NaN``/``Infinity``/``-Infinity`` are accepted (``kParseNanAndInfFlag``).

    Raises:
        ServingError: INVALID_ARGUMENT ``JSON Parse error: ...`` or ``... Is not object``.
    """
    if not body:
        raise invalid_argument("JSON Parse error: The document is empty")
    depth = _nesting_depth(body)
    if depth > MAX_JSON_DEPTH:
        raise invalid_argument(
            f"JSON Parse error: arrays/objects nested {depth} levels deep; this server parses at "
            f"most {MAX_JSON_DEPTH} (a tensor has at most {MAX_RANK} dimensions here)"
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise invalid_argument(f"JSON Parse error: Invalid encoding in string. at offset: {exc.start}") from exc
    start = len(text) - len(text.lstrip(_JSON_WS.decode()))
    if start == len(text):
        raise invalid_argument("JSON Parse error: The document is empty")
    try:
        doc, _end = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError as exc:
        raise invalid_argument(f"JSON Parse error: {exc.msg} at offset: {exc.pos}") from exc
    except RecursionError as exc:  # the depth check above should make this unreachable
        raise invalid_argument(
            f"JSON Parse error: arrays/objects nested more than {MAX_JSON_DEPTH} levels deep"
        ) from exc
    if not isinstance(doc, dict):
        raise invalid_argument(f"JSON Value: {debug_string(doc)} Is not object")
    return doc


def _is_b64(value: Any) -> bool:
    # IsValBase64Object
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _is_element_object(value: Any) -> bool:
    return isinstance(value, dict) and not _is_b64(value)


def _dense_shape(value: Any) -> list[int]:
    # GetDenseTensorShape: follow the first element down (iteratively).
    shape: list[int] = []
    while isinstance(value, list):
        shape.append(len(value))
        if len(shape) > MAX_RANK:
            raise invalid_argument(
                f"JSON Value: {debug_string(value)} is nested more than {MAX_RANK} lists deep; "
                f"this server accepts tensors of at most {MAX_RANK} dimensions"
            )
        if not value:
            break
        value = value[0]
    return shape


def _b64_decode(value: Any) -> bytes:
    # JsonDecodeBase64Object
    if not _is_b64(value):
        raise invalid_argument(f"JSON Value: {debug_string(value)} not formatted correctly for base64 data")
    try:
        return base64.b64decode(value["b64"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise invalid_argument("Unable to base64 decode") from exc


def _check_leaf(value: Any, dtype: int) -> None:
    # AddValueToTensor's test for one value; raises TF Serving's error for a bad one.
    kinds = _INPUT_KINDS.get(dtype)
    if kinds is None:
        raise ServingError(
            grpc.StatusCode.UNIMPLEMENTED,
            f"Conversion of JSON Value: {debug_string(value)} to type: {dtype_string(dtype)}",
        )
    types, bounds, _ = kinds
    if isinstance(value, bool) != (dtype == types_pb2.DT_BOOL) or not isinstance(value, types):
        raise _type_error(value, dtype)
    # Only integer kinds have bounds, so `value` is an int here.
    if bounds is not None and isinstance(value, int) and not bounds[0] <= value <= bounds[1]:
        raise _type_error(value, dtype)


def _fill(value: Any, shape: list[int], level: int, dtype: int, out: list) -> None:
    """``FillTensorProto``: append ``value``'s leaves to ``out`` in order, or raise as TF Serving.

    The recursion is bounded by the rank (``_dense_shape`` caps it at MAX_RANK): a list deeper
    than the rank is an error before it is entered.
    """
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            raise invalid_argument(
                f"JSON Value: {debug_string(value)} found at incorrect level: {level + 1} in the "
                f"JSON DOM. Expected at level: {rank}"
            )
        if isinstance(value, dict):
            if dtype != types_pb2.DT_STRING:
                raise _type_error(value, dtype)
            out.append(_b64_decode(value))
            return
        _check_leaf(value, dtype)
        out.append(value)
        return
    if level >= rank:
        raise invalid_argument(f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(value) != shape[level]:
        raise invalid_argument(
            f"Encountered list at unexpected size: {len(value)} at level: {level} expected size: "
            f"{shape[level]}"
        )
    if level == rank - 1 and value and _all_leaves_ok(value, dtype):
        out.extend(value)
        return
    for v in value:
        _fill(v, shape, level + 1, dtype, out)


def _all_leaves_ok(values: list, dtype: int) -> bool:
    # The fast path for the innermost list: one C-level pass over the element types.
    kinds = _INPUT_KINDS.get(dtype)
    if kinds is None:
        return False
    types, bounds, _ = kinds
    present = set(map(type, values))
    if not present.issubset(types):
        return False
    if bounds is not None:
        return bounds[0] <= min(values) and max(values) <= bounds[1]
    return True


def _to_array(flat: list, shape: list[int], dtype: int) -> np.ndarray:
    if dtype not in _INPUT_KINDS:  # only an empty list of such a dtype gets here
        raise ServingError(
            grpc.StatusCode.UNIMPLEMENTED,
            f"Conversion of JSON Value: [] to type: {dtype_string(dtype)}",
        )
    np_dtype = _INPUT_KINDS[dtype][2]
    if dtype == types_pb2.DT_STRING:
        array = np.empty(len(flat), dtype=object)
        try:
            array[:] = [v if isinstance(v, bytes) else v.encode("utf-8") for v in flat]
        except UnicodeEncodeError as exc:
            raise invalid_argument(
                "JSON Parse error: The surrogate pair in string is invalid."
            ) from exc
        return array.reshape(shape)
    if np_dtype.kind in ("i", "u") and flat and np_dtype.itemsize < 4:
        # TF Serving stores any int32 in int_val and TensorFlow truncates it; refuse instead.
        info = np.iinfo(np_dtype)
        low, high = min(flat), max(flat)
        if low < info.min or high > info.max:
            bad = low if low < info.min else high
            raise invalid_argument(
                f"JSON Value: {bad} is out of range for type: {dtype_string(dtype)} "
                f"(expected {info.min}..{info.max})"
            )
    try:
        with np.errstate(over="ignore"):
            # rapidjson's GetFloat() is a static_cast: beyond FLT_MAX it stores +-inf.
            return np.array(flat, dtype=np_dtype).reshape(shape)
    except OverflowError as exc:
        raise invalid_argument(
            "JSON Parse error: Number too big to be stored in double."
        ) from exc


def json_to_array(value: Any, dtype: int) -> np.ndarray:
    """Convert one JSON value (scalar or nested lists) to an array of ``dtype``, as TF Serving's
    ``GetDenseTensorShape`` + ``FillTensorProto``.

    Raises:
        ServingError: INVALID_ARGUMENT for ragged lists, wrong JSON types, bad base64;
            UNIMPLEMENTED for a dtype JSON cannot carry.
    """
    shape = _dense_shape(value)
    flat: list = []
    _fill(value, shape, 0, dtype, flat)
    return _to_array(flat, shape, dtype)


GetInputs = Callable[[str], Mapping[str, Any]]


def parse_predict_body(body: bytes, get_inputs: GetInputs) -> tuple[str, dict[str, np.ndarray], str]:
    """Parse a ``:predict`` body as ``FillPredictRequestFromJson``.

    Args:
        body: the raw request body.
        get_inputs: ``signature_name -> {alias: TensorInfo}`` (REST's GetInfoMap).

    Returns:
        (signature_name as sent, inputs by alias, ROW or COLUMNAR).

    Raises:
        ServingError: with TF Serving's code and message.
    """
    doc = parse_json(body)
    signature_name = doc.get("signature_name", "")
    if not isinstance(signature_name, str):
        raise invalid_argument(
            f"JSON Value: {debug_string(doc)} not formatted correctly. 'signature_name' key must "
            "be a string value."
        )
    infos = get_inputs(signature_name)
    if not infos:
        raise invalid_argument(
            f"Failed to get input map for signature: {signature_name or 'DEFAULT'}"
        )
    has_instances, has_inputs = "instances" in doc, "inputs" in doc
    if has_instances:
        if has_inputs:
            raise invalid_argument(
                f"JSON Value: {debug_string(doc)} Not formatted correctly expecting only one of "
                "'inputs' or 'instances' keys to exist "
            )
        instances = doc["instances"]
        if not isinstance(instances, list):
            raise invalid_argument(
                f"JSON Value: {debug_string(doc)} Expecting 'instances' to be an list/array"
            )
        if not instances:
            raise invalid_argument(f"JSON Value: {debug_string(doc)} No values in 'instances' array")
        return signature_name, _from_instances(instances, infos), ROW
    if has_inputs:
        return signature_name, _from_inputs(doc["inputs"], infos), COLUMNAR
    raise invalid_argument("Missing 'inputs' or 'instances' key")


class _Column:
    """One named tensor being batched from ``instances`` (AddInstanceItem's size/shape maps)."""

    def __init__(self) -> None:
        self.size: int | None = None
        self.shape: list[int] = []
        self.flat: list = []


def _add_instance_item(item: Any, name: str, infos: Mapping[str, Any], columns: dict[str, _Column]) -> None:
    # AddInstanceItem
    if name not in infos:
        raise invalid_argument(f"JSON object: does not have named input: {name}")
    dtype = infos[name].dtype
    shape = _dense_shape(item)
    flat: list = []
    _fill(item, shape, 0, dtype, flat)
    column = columns.setdefault(name, _Column())
    if column.size is None:
        column.size, column.shape = len(flat), shape
    elif column.size != len(flat):
        raise invalid_argument(f"Expecting tensor size: {column.size} but got: {len(flat)}")
    elif column.shape != shape:
        raise invalid_argument(
            f"Expecting shape {shape_string(tuple(column.shape))} but got: {shape_string(tuple(shape))}"
        )
    column.flat.extend(flat)


def _from_instances(instances: list, infos: Mapping[str, Any]) -> dict[str, np.ndarray]:
    # FillTensorMapFromInstancesList
    if not isinstance(instances[0], dict) and len(infos) > 1:
        raise invalid_argument(
            "instances is a plain list, but expecting list of objects as multiple input "
            "tensors required as per tensorinfo_map"
        )
    elements_are_objects = _is_element_object(instances[0])
    names = sorted(infos)
    columns: dict[str, _Column] = {}
    for i, elem in enumerate(instances):
        if elements_are_objects:
            if not _is_element_object(elem):
                raise invalid_argument(f"Expecting object but got list at item {i} of input list")
            for key, value in elem.items():
                try:
                    _add_instance_item(value, key, infos, columns)
                except ServingError as exc:
                    raise invalid_argument(
                        f"Failed to process element: {i} key: {key} of 'instances' list. Error: "
                        f"{_status_string(exc)}"
                    ) from exc
            if sorted(elem) != names:
                raise invalid_argument(
                    f"Failed to process element: {i} of 'instances' list. JSON object: "
                    f"{debug_string(elem)} keys must be equal to: {','.join(names)}"
                )
        else:
            if _is_element_object(elem):
                raise invalid_argument(f"Expecting value/list but got object at item {i} of input list")
            try:
                _add_instance_item(elem, names[0], infos, columns)
            except ServingError as exc:
                raise invalid_argument(
                    f"Failed to process element: {i} of 'instances' list. Error: {_status_string(exc)}"
                ) from exc
    return {
        name: _to_array(col.flat, [len(instances), *col.shape], infos[name].dtype)
        for name, col in columns.items()
    }


def _from_inputs(value: Any, infos: Mapping[str, Any]) -> dict[str, np.ndarray]:
    # FillTensorMapFromInputsMap: extra keys in an `inputs` object are ignored, as there.
    if not isinstance(value, dict) or _is_b64(value):
        if len(infos) > 1:
            raise invalid_argument(
                "inputs is a plain value/list, but expecting an object as multiple input "
                "tensors required as per tensorinfo_map"
            )
        alias = next(iter(sorted(infos)))
        return {alias: json_to_array(value, infos[alias].dtype)}
    out = {}
    for name in sorted(infos):
        if name not in value:
            raise invalid_argument(f"Missing named input: {name} in 'inputs' object.")
        out[name] = json_to_array(value[name], infos[name].dtype)
    return out


# ---- responses (MakeJsonFromTensors) ------------------------------------------------------

# Output dtypes AddSingleValueAndAdvance can write; anything else is refused as there.
_WRITABLE_KINDS = {
    np.dtype(np.float32): "float",
    np.dtype(np.float64): "double",
    np.dtype(np.int32): "int",
    np.dtype(np.int16): "int",
    np.dtype(np.int8): "int",
    np.dtype(np.uint8): "int",
    np.dtype(np.int64): "int",
    np.dtype(np.uint32): "int",
    np.dtype(np.uint64): "int",
    np.dtype(np.bool_): "bool",
}

_NUMPY_DTYPE_STRING = {
    "float16": "half",
    "uint16": "uint16",
    "complex64": "complex64",
    "complex128": "complex128",
}


def format_decimals(values: np.ndarray) -> list[str]:
    """``WriteDecimal`` for every element of a float32/float64 array.

    ``absl::StrCat`` (six significant digits, ``%g``), or ``%.9g``/``%.17g``
    (``max_digits10``) when six digits do not round-trip; ``.0`` appended when the text has
    neither ``.`` nor ``e``; ``NaN``, ``Infinity``, ``-Infinity`` for non-finite values.
    """
    flat = np.asarray(values).ravel()
    wide = flat.astype(np.float64).tolist()
    texts = [format(v, "g") for v in wide]
    finite = np.isfinite(flat)
    with np.errstate(over="ignore", invalid="ignore"):
        # SimpleAtof/SimpleAtod of the six-digit text; via double, as numpy parses too.
        back = np.fromiter(map(float, texts), dtype=np.float64, count=len(texts)).astype(flat.dtype)
    redo = np.flatnonzero(finite & (back != flat))
    digits = 9 if flat.dtype == np.float32 else 17
    for i in redo.tolist():
        texts[i] = format(wide[i], f".{digits}g")
    texts = [t if "." in t or "e" in t else t + ".0" for t in texts]
    for i in np.flatnonzero(~finite).tolist():
        v = wide[i]
        texts[i] = "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")
    return texts


def _value_texts(alias: str, array: np.ndarray) -> list[str]:
    # AddSingleValueAndAdvance for every element, in order.
    if array.dtype.kind in ("O", "S"):
        as_b64 = alias.endswith("_bytes")
        out = []
        for b in array.ravel().tolist():
            b = b if isinstance(b, bytes) else str(b).encode()
            out.append(
                '{"b64": "' + base64.b64encode(b).decode() + '"}'
                if as_b64
                else json.dumps(b.decode("utf-8", errors="replace"))
            )
        return out
    kind = _WRITABLE_KINDS.get(array.dtype)
    if kind is None:
        if array.size == 0:
            return []
        name = _NUMPY_DTYPE_STRING.get(array.dtype.name, array.dtype.name)
        raise invalid_argument(f"Failed to write JSON value for tensor type: {name}")
    if kind in ("float", "double"):
        return format_decimals(array)
    if kind == "bool":
        return ["true" if v else "false" for v in array.ravel().tolist()]
    return [str(v) for v in array.ravel().tolist()]


def _nest(texts: list[str], shape: tuple[int, ...]) -> str:
    # AddTensorValues: scalars bare, otherwise nested lists, innermost first.
    items = texts
    for k in range(len(shape) - 1, -1, -1):
        d = shape[k]
        groups = int(np.prod(shape[:k], dtype=np.int64))
        items = ["[" + ", ".join(items[g * d : (g + 1) * d]) + "]" for g in range(groups)]
    return items[0]


def make_predict_json(outputs: Mapping[str, np.ndarray], fmt: str) -> str:
    """``MakeJsonFromTensors``: the response text, ``{"predictions": ...}`` (row) or
    ``{"outputs": ...}`` (columnar), floats written as TF Serving's ``WriteDecimal``.

    Raises:
        ServingError: INVALID_ARGUMENT ``Cannot convert empty tensor map to JSON``, ``Tensor
            name: x has no shape information``, ``... has inconsistent batch size ...``,
            ``Failed to write JSON value for tensor type: complex64``.
    """
    if not outputs:
        raise invalid_argument("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    arrays = {n: np.asarray(outputs[n]) for n in names}
    if fmt == COLUMNAR:
        parts = {n: _nest(_value_texts(n, a), a.shape) for n, a in arrays.items()}
        if len(names) == 1:
            return '{"outputs": ' + parts[names[0]] + "}"
        return '{"outputs": {' + ", ".join(json.dumps(n) + ": " + parts[n] for n in names) + "}}"
    batch = -1
    for n in names:
        shape = arrays[n].shape
        if not shape:
            raise invalid_argument(f"Tensor name: {n} has no shape information ")
        if batch >= 0 and shape[0] != batch:
            raise invalid_argument(
                f"Tensor name: {n} has inconsistent batch size: {shape[0]} expecting: {batch}"
            )
        batch = shape[0]
    rows: dict[str, list[str]] = {}
    for n, a in arrays.items():
        texts = _value_texts(n, a)
        per_item = int(np.prod(a.shape[1:], dtype=np.int64))
        rows[n] = [_nest(texts[i * per_item : (i + 1) * per_item], a.shape[1:]) for i in range(batch)]
    if len(names) == 1:
        items = rows[names[0]]
    else:
        items = ["{" + ", ".join(json.dumps(n) + ": " + rows[n][i] for n in names) + "}" for i in range(batch)]
    return '{"predictions": [' + ", ".join(items) + "]}"


def error_json(message: str) -> str:
    """``MakeJsonFromStatus``: the body of a refused request, ``{"error": "<message>"}``."""
    return json.dumps({"error": message})
