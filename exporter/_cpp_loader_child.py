"""The subprocess body of the C++-loader runner: TensorFlow's C API through ctypes, no TF Python.

Run by `exporter._cpp_loader` as a script (never imported by the package: importing
`exporter` imports TensorFlow's Python package, which must not be in this process):

    python -P _cpp_loader_child.py LIBTENSORFLOW_CC

It loads the library (and `libtensorflow_framework.so.2` beside it), then serves requests
on stdin/stdout, each a frame of an 8-byte little-endian length and a pickle:

    request  (op, {args})       op in load, run, benchmark, unload, exit
    response ("ok", payload) | ("error", {"code": int | None, "message": str, "stage": str})

The first response, sent without a request, says whether the library loaded and names its
`TF_Version()`. This process knows tensor names only; signatures, aliases and defaults are
resolved by the parent from the MetaGraphDef that `load` returns. TF's C++ code may write
to stdout, so the protocol uses a duplicate of the original stdout and fd 1 goes to stderr.

Everything a request creates (sessions, graphs, tensors, buffers, statuses) is freed by
the request that ends its life (`unload`, the end of `run`); nothing is kept in globals.
"""

from __future__ import annotations

import ctypes
import io
import os
import pickle
import struct
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

#: TF_DataType → numpy dtype (tensorflow/c/tf_datatype.h). TF_STRING (7) is handled apart.
_NUMPY_OF = {
    1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8,
    9: np.int64, 10: np.bool_, 17: np.uint16, 19: np.float16, 22: np.uint32, 23: np.uint64,
}
_TF_OF = {np.dtype(v): k for k, v in _NUMPY_OF.items()}
_TF_STRING = 7
#: sizeof(TF_TString) (tensorflow/core/platform/ctstring_internal.h): a 24-byte union.
_TSTRING_SIZE = 24
_HEADER = struct.Struct("<Q")

#: The C API functions used, with (restype, argtypes). A library lacking one is refused.
_P = ctypes.c_void_p
_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "TF_Version": (ctypes.c_char_p, []),
    "TF_NewStatus": (_P, []),
    "TF_DeleteStatus": (None, [_P]),
    "TF_GetCode": (ctypes.c_int, [_P]),
    "TF_Message": (ctypes.c_char_p, [_P]),
    "TF_NewSessionOptions": (_P, []),
    "TF_DeleteSessionOptions": (None, [_P]),
    "TF_SetConfig": (None, [_P, ctypes.c_void_p, ctypes.c_size_t, _P]),
    "TF_NewGraph": (_P, []),
    "TF_DeleteGraph": (None, [_P]),
    "TF_GraphOperationByName": (_P, [_P, ctypes.c_char_p]),
    "TF_NewBuffer": (_P, []),
    "TF_NewBufferFromString": (_P, [ctypes.c_void_p, ctypes.c_size_t]),
    "TF_DeleteBuffer": (None, [_P]),
    "TF_LoadSessionFromSavedModel": (
        _P, [_P, _P, ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, _P, _P, _P]
    ),
    "TF_CloseSession": (None, [_P, _P]),
    "TF_DeleteSession": (None, [_P, _P]),
    "TF_SessionRun": (
        None, [_P, _P, _P, ctypes.POINTER(_P), ctypes.c_int, _P, ctypes.POINTER(_P), ctypes.c_int,
               _P, ctypes.c_int, _P, _P]
    ),
    "TF_AllocateTensor": (_P, [ctypes.c_int, ctypes.POINTER(ctypes.c_int64), ctypes.c_int, ctypes.c_size_t]),
    "TF_DeleteTensor": (None, [_P]),
    "TF_TensorType": (ctypes.c_int, [_P]),
    "TF_NumDims": (ctypes.c_int, [_P]),
    "TF_Dim": (ctypes.c_int64, [_P, ctypes.c_int]),
    "TF_TensorByteSize": (ctypes.c_size_t, [_P]),
    "TF_TensorData": (_P, [_P]),
    "TF_StringInit": (None, [_P]),
    "TF_StringCopy": (None, [_P, ctypes.c_char_p, ctypes.c_size_t]),
    "TF_StringGetDataPointer": (_P, [_P]),
    "TF_StringGetSize": (ctypes.c_size_t, [_P]),
    "TF_StringDealloc": (None, [_P]),
}


class _Buffer(ctypes.Structure):
    """TF_Buffer (tensorflow/c/tf_buffer.h)."""

    _fields_ = [("data", ctypes.c_void_p), ("length", ctypes.c_size_t), ("data_deallocator", ctypes.c_void_p)]


class _Output(ctypes.Structure):
    """TF_Output (tensorflow/c/c_api.h)."""

    _fields_ = [("oper", ctypes.c_void_p), ("index", ctypes.c_int)]


class RequestError(Exception):
    """A request failed; `code` is TF's status code when TensorFlow reported it."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class CApi:
    """The C API of one libtensorflow_cc, with argument types declared."""

    def __init__(self, library: Path) -> None:
        framework = library.with_name("libtensorflow_framework.so.2")
        # The framework first, by full path: libtensorflow_cc needs it, and this must be the
        # copy beside it, not another TF's found through the loader's search path.
        self._framework = ctypes.CDLL(str(framework), mode=ctypes.RTLD_GLOBAL) if framework.exists() else None
        self._lib = ctypes.CDLL(str(library), mode=ctypes.RTLD_GLOBAL)
        missing = [name for name in _SIGNATURES if not hasattr(self._lib, name)]
        if missing:
            raise RequestError(
                f"{library} does not export TensorFlow's C API: expected the symbols "
                f"{', '.join(missing)} (it is not a libtensorflow_cc.so.2?)."
            )
        for name, (restype, argtypes) in _SIGNATURES.items():
            function = getattr(self._lib, name)
            function.restype, function.argtypes = restype, argtypes
            setattr(self, name, function)

    if TYPE_CHECKING:
        # The TF_* functions are set from _SIGNATURES above; to the checker they are Any.
        def __getattr__(self, name: str) -> Any: ...

    def check(self, status: int, what: str) -> None:
        """Raises RequestError with TF's code and message unless `status` is OK."""
        code = self.TF_GetCode(status)
        if code != 0:
            message = (self.TF_Message(status) or b"").decode("utf-8", "replace")
            raise RequestError(f"{what}: {message}", code)


class _Session:
    """One SavedModel loaded with TF_LoadSessionFromSavedModel; `close()` frees it all."""

    def __init__(self, api: CApi, export_dir: str, tags: list[str], config: bytes | None) -> None:
        self.api = api
        self.graph = api.TF_NewGraph()
        self.session = None
        status = api.TF_NewStatus()
        options = api.TF_NewSessionOptions()
        meta = api.TF_NewBuffer()
        try:
            if config:
                api.TF_SetConfig(options, config, len(config), status)
                api.check(status, "TF_SetConfig refused the ConfigProto")
            c_tags = (ctypes.c_char_p * len(tags))(*[t.encode() for t in tags])
            self.session = api.TF_LoadSessionFromSavedModel(
                options, None, export_dir.encode(), c_tags, len(tags), self.graph, meta, status
            )
            api.check(status, f"TF_LoadSessionFromSavedModel({export_dir!r}, tags={tags})")
            buffer = _Buffer.from_address(meta)
            self.meta_graph_def = ctypes.string_at(buffer.data, buffer.length)
        except BaseException:
            self.close()
            raise
        finally:
            api.TF_DeleteBuffer(meta)
            api.TF_DeleteSessionOptions(options)
            api.TF_DeleteStatus(status)

    def outputs(self, names: list[str]) -> ctypes.Array:
        """TF_Output structs for tensor names `op:index`."""
        array = (_Output * len(names))()
        for i, name in enumerate(names):
            op_name, _, index = name.rpartition(":")
            if not op_name or not index.isdigit():
                op_name, index = name, "0"
            op = self.api.TF_GraphOperationByName(self.graph, op_name.encode())
            if not op:
                raise RequestError(f"The graph has no operation {op_name!r} (tensor {name!r}).", 5)
            array[i].oper, array[i].index = op, int(index)
        return array

    def run(
        self,
        feeds: list[tuple[str, np.ndarray]],
        fetches: list[str],
        repeats: int = 1,
        warmup: int = 0,
        run_options: bytes | None = None,
    ) -> tuple[list[np.ndarray], list[float], bytes | None]:
        """TF_SessionRun `warmup + repeats` times.

        Returns:
            The last run's outputs, each timed run's seconds, and with `run_options` (a
            serialized RunOptions) the last run's serialized RunMetadata (step stats).
        """
        api = self.api
        inputs = self.outputs([name for name, _ in feeds])
        outputs = self.outputs(fetches)
        tensors = (_P * len(feeds))()
        values = (_P * len(fetches))()
        strings: list[tuple[int, int]] = []  # (data pointer, count) of TF_STRING inputs
        status = api.TF_NewStatus()
        seconds: list[float] = []
        result: list[np.ndarray] = []
        options = api.TF_NewBufferFromString(run_options, len(run_options)) if run_options is not None else None
        metadata = api.TF_NewBuffer() if run_options is not None else None
        metadata_bytes: bytes | None = None
        try:
            for i, (_, array) in enumerate(feeds):
                tensors[i] = self._tensor(array, strings)
            for iteration in range(warmup + repeats):
                start = time.perf_counter()
                api.TF_SessionRun(
                    self.session, options, inputs, tensors, len(feeds), outputs, values, len(fetches),
                    None, 0, metadata, status,
                )
                elapsed = time.perf_counter() - start
                try:
                    api.check(status, "TF_SessionRun")
                    if iteration == warmup + repeats - 1:
                        result = [self._array(values[i]) for i in range(len(fetches))]
                        if metadata:
                            buffer = _Buffer.from_address(metadata)
                            metadata_bytes = ctypes.string_at(buffer.data, buffer.length)
                finally:
                    for i in range(len(fetches)):
                        if values[i]:
                            api.TF_DeleteTensor(values[i])
                            values[i] = None
                if iteration >= warmup:
                    seconds.append(elapsed)
        finally:
            for data, count in strings:
                for k in range(count):
                    api.TF_StringDealloc(data + k * _TSTRING_SIZE)
            for i in range(len(feeds)):
                if tensors[i]:
                    api.TF_DeleteTensor(tensors[i])
            for handle in (options, metadata):
                if handle:
                    api.TF_DeleteBuffer(handle)
            api.TF_DeleteStatus(status)
        return result, seconds, metadata_bytes

    def _tensor(self, array: np.ndarray, strings: list[tuple[int, int]]) -> int:
        api = self.api
        array = np.asarray(array)
        dims = (ctypes.c_int64 * max(array.ndim, 1))(*array.shape)
        if array.dtype.kind in "OSU":
            flat = [x.encode() if isinstance(x, str) else bytes(x) for x in array.ravel().tolist()]
            tensor = api.TF_AllocateTensor(_TF_STRING, dims, array.ndim, len(flat) * _TSTRING_SIZE)
            data = api.TF_TensorData(tensor)
            for k, item in enumerate(flat):
                api.TF_StringInit(data + k * _TSTRING_SIZE)
                api.TF_StringCopy(data + k * _TSTRING_SIZE, item, len(item))
            strings.append((data, len(flat)))
            return tensor
        dtype = _TF_OF.get(array.dtype.newbyteorder("=") if array.dtype.byteorder == ">" else array.dtype)
        if dtype is None:
            raise RequestError(
                f"Cannot feed a numpy array of dtype {array.dtype}; expected one of "
                f"{sorted(str(d) for d in _TF_OF)} or bytes.", 3
            )
        array = np.ascontiguousarray(array, array.dtype.newbyteorder("="))
        tensor = api.TF_AllocateTensor(dtype, dims, array.ndim, array.nbytes)
        ctypes.memmove(api.TF_TensorData(tensor), array.ctypes.data, array.nbytes)
        return tensor

    def _array(self, tensor: int | None) -> np.ndarray:
        api = self.api
        if not tensor:
            raise RequestError("TF_SessionRun reported OK but returned no tensor for a fetch.", 13)
        dtype = api.TF_TensorType(tensor)
        shape = tuple(api.TF_Dim(tensor, d) for d in range(api.TF_NumDims(tensor)))
        data = api.TF_TensorData(tensor)
        if dtype == _TF_STRING:
            count = int(np.prod(shape, dtype=np.int64))
            items = []
            for k in range(count):
                element = data + k * _TSTRING_SIZE
                items.append(ctypes.string_at(api.TF_StringGetDataPointer(element), api.TF_StringGetSize(element)))
            out = np.empty(count, dtype=object)
            out[:] = items
            return out.reshape(shape)
        if dtype not in _NUMPY_OF:
            raise RequestError(f"Output of TF_DataType {dtype} has no numpy equivalent.", 12)
        size = api.TF_TensorByteSize(tensor)
        raw = ctypes.string_at(data, size) if size else b""
        return np.frombuffer(raw, _NUMPY_OF[dtype]).reshape(shape).copy()

    def close(self) -> None:
        api = self.api
        status = api.TF_NewStatus()
        try:
            if self.session:
                api.TF_CloseSession(self.session, status)
                api.TF_DeleteSession(self.session, status)
                self.session = None
            if self.graph:
                api.TF_DeleteGraph(self.graph)
                self.graph = None
        finally:
            api.TF_DeleteStatus(status)


class _FrameUnpickler(pickle.Unpickler):
    """Reads a frame: builtins (dicts, lists, str, bytes, numbers) and numpy arrays only.

    Parent and child are the same program, but a frame is still data: resolving any other
    global (which is how a pickle runs code) is refused.
    """

    _ALLOWED = frozenset(
        (module, name)
        for core in ("numpy._core", "numpy.core")
        for module, name in (
            (f"{core}.multiarray", "_reconstruct"),
            (f"{core}.multiarray", "scalar"),
            (f"{core}.numeric", "_frombuffer"),
        )
    ) | {("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"A frame may hold builtins and numpy arrays only; it refers to {module}.{name}."
            )
        return super().find_class(module, name)


def load_frame(data: bytes) -> Any:
    """Decodes one frame written by `dump_frame` (see `_FrameUnpickler`)."""
    return _FrameUnpickler(io.BytesIO(data)).load()


def dump_frame(message: Any) -> bytes:
    """Encodes one frame's payload (its length header is the caller's)."""
    return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)


def _send(stream: BinaryIO, message: Any) -> None:
    data = dump_frame(message)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _receive(stream: BinaryIO) -> Any:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return ("exit", {})
    (length,) = _HEADER.unpack(header)
    return load_frame(stream.read(length))


def _serve(api: CApi, requests: BinaryIO, responses: BinaryIO) -> None:
    sessions: dict[int, _Session] = {}
    next_handle = 1
    try:
        while True:
            op, args = _receive(requests)
            if op == "exit":
                return
            try:
                if op == "load":
                    session = _Session(api, args["export_dir"], list(args["tags"]), args.get("config"))
                    sessions[next_handle] = session
                    payload: Any = {"handle": next_handle, "meta_graph_def": session.meta_graph_def}
                    next_handle += 1
                elif op in ("run", "benchmark"):
                    session = sessions[args["handle"]]
                    outputs, seconds, metadata = session.run(
                        args["feeds"], args["fetches"], args.get("repeats", 1), args.get("warmup", 0),
                        args.get("run_options"),
                    )
                    if op == "run" and args.get("run_options") is None:
                        payload = outputs
                    else:
                        payload = {"outputs": outputs, "seconds": seconds, "run_metadata": metadata}
                elif op == "unload":
                    sessions.pop(args["handle"]).close()
                    payload = None
                else:
                    raise RequestError(f"Unknown request {op!r}.")
                _send(responses, ("ok", payload))
            except RequestError as error:
                _send(responses, ("error", {"code": error.code, "message": str(error), "stage": op}))
            except Exception as error:  # noqa: BLE001 — any failure goes back to the caller
                _send(responses, ("error", {"code": None, "message": f"{type(error).__name__}: {error}", "stage": op}))
    finally:
        for session in sessions.values():
            session.close()


def main(argv: list[str]) -> int:
    """Loads the library named by argv[1] and serves requests until `exit` or end of input."""
    responses = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    requests = os.fdopen(os.dup(0), "rb")
    library = Path(argv[1])
    try:
        api = CApi(library)
    except (OSError, RequestError) as error:
        _send(responses, ("error", {"code": None, "message": f"Cannot load {library}: {error}", "stage": "library"}))
        return 1
    _send(responses, ("ok", {"version": api.TF_Version().decode(), "library": str(library), "pid": os.getpid()}))
    _serve(api, requests, responses)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
