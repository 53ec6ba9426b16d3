"""Running a SavedModel through TensorFlow's C++ loader, as TF Serving does, in a subprocess.

TF Serving loads a version with `tensorflow::LoadSavedModel` (C++). The C API's
`TF_LoadSessionFromSavedModel`, exported by the `libtensorflow_cc.so.2` every TensorFlow
wheel ships, calls that same function. This module drives it from a child process
(`_cpp_loader_child.py`: ctypes and numpy, no TensorFlow Python), so that

- the library of *another* TF release (an older TF Serving's runtime) can be loaded
  beside the TF this process imported, and
- a crash of the C++ code is an error here, never a crash of the caller.

Typical use:

    with CppRuntime() as runtime:                      # the installed TF's library
        with runtime.load("models/mnist/1") as model:  # one TF_Session
            out = model.run("explain", {"images": x})  # numpy in, numpy out

`CppRuntime(library)` takes a `libtensorflow_cc.so.2` (or the directory holding it and
`libtensorflow_framework.so.2`). `load_saved_model()` is the one-call form. The session
object is meant to be loaded once and run many times; `benchmark()` times TF_SessionRun
in the child, with no Python between the runs but a ctypes call.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import selectors
import signal
import struct
import subprocess
import sys
import tempfile
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, NoReturn, cast

import numpy as np

from exporter._cpp_loader_child import dump_frame, load_frame
from exporter._errors import ExportError
from model_server._tf_env import child_environment

__all__ = [
    "FULL_TRACE",
    "CppLoaderError",
    "CppRuntime",
    "CppSavedModel",
    "SignatureInfo",
    "TensorInfo",
    "installed_library",
    "load_saved_model",
]

CHILD_SCRIPT = Path(__file__).with_name("_cpp_loader_child.py")
LIBRARY_NAME = "libtensorflow_cc.so.2"
FRAMEWORK_NAME = "libtensorflow_framework.so.2"
_HEADER = struct.Struct("<Q")
#: A serialized `tensorflow.RunOptions` with trace_level = FULL_TRACE (field 1, value 3).
FULL_TRACE = b"\x08\x03"
#: tensorflow/core/protobuf/error_codes.proto, for messages ("INVALID_ARGUMENT (3)").
_CODE_NAMES = (
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
)
#: tensorflow.DataType numbers → numpy, for the defaults and the dtype checks of feeds.
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 6: np.int8, 7: np.object_,
           9: np.int64, 10: np.bool_, 19: np.float16}


class CppLoaderError(ExportError):
    """The C++ loader refused a library, a SavedModel or a run, or its process died.

    Attributes:
        code: TF's status code (`tensorflow.error.Code` number) when TensorFlow reported
            the error; None for errors before or outside TensorFlow (library, crash).
        code_name: The code's name, e.g. "INVALID_ARGUMENT", or None.
        tf_message: TF's message (or the runner's, when `code` is None).
        library: The libtensorflow_cc.so.2 in use.
        stage: What was being done: "library", "load", "run", "benchmark", "process".
    """

    def __init__(self, message: str, *, code: int | None, library: Path | str, stage: str) -> None:
        self.code = code
        self.code_name = _CODE_NAMES[code] if code is not None and 0 <= code < len(_CODE_NAMES) else None
        self.tf_message = message
        self.library = Path(library)
        self.stage = stage
        status = f"{self.code_name} ({code}): " if code is not None else ""
        super().__init__(f"C++ loader ({self.library}), {stage}: {status}{message}")


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """A signature input or output: graph tensor name, `tensorflow.DataType` number, shape (-1 = any)."""

    name: str
    dtype: int
    shape: tuple[int, ...] | None


@dataclasses.dataclass(frozen=True)
class SignatureInfo:
    """A SignatureDef as read from the C++ loader's MetaGraphDef.

    Attributes:
        inputs / outputs: alias → TensorInfo.
        defaults: alias → default value (`SignatureDef.defaults`, TF ≥ 2.14 protos).
        method_name: e.g. "tensorflow/serving/predict".
    """

    inputs: Mapping[str, TensorInfo]
    outputs: Mapping[str, TensorInfo]
    defaults: Mapping[str, np.ndarray]
    method_name: str


def installed_library() -> Path:
    """The `libtensorflow_cc.so.2` of the installed TensorFlow wheel (TensorFlow is not imported).

    Raises:
        CppLoaderError: TensorFlow is not installed, or its wheel lacks the library.
    """
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or spec.origin is None:
        raise CppLoaderError(
            "TensorFlow is not installed; pass the path of a libtensorflow_cc.so.2.",
            code=None, library=LIBRARY_NAME, stage="library",
        )
    path = Path(spec.origin).parent / LIBRARY_NAME
    if not path.is_file():
        raise CppLoaderError(
            f"The installed TensorFlow ({Path(spec.origin).parent}) has no {LIBRARY_NAME}; "
            "expected a TensorFlow ≥ 2.x wheel from the package index.",
            code=None, library=path, stage="library",
        )
    return path


def _resolve_library(library: str | Path | None) -> Path:
    if library is None:
        return installed_library()
    path = Path(library)
    if path.is_dir():
        path = path / LIBRARY_NAME
    if not path.is_file():
        raise CppLoaderError(
            f"Expected {LIBRARY_NAME} (or a directory holding it and {FRAMEWORK_NAME}); "
            f"{path} does not exist.",
            code=None, library=path, stage="library",
        )
    return path.resolve()


def _shape(proto: Any) -> tuple[int, ...] | None:
    if proto.unknown_rank:
        return None
    return tuple(int(d.size) for d in proto.dim)


def parse_signatures(meta_graph_def: bytes) -> dict[str, SignatureInfo]:
    """SignatureDefs of a serialized MetaGraphDef, parsed without TensorFlow's Python package.

    Raises:
        google.protobuf.message.DecodeError: The bytes are not a MetaGraphDef.
    """
    from serving_client import _codec, _protos

    meta = _protos.message_class("tensorflow.MetaGraphDef").FromString(meta_graph_def)
    signatures = {}
    for name, sig in meta.signature_def.items():
        signatures[name] = SignatureInfo(
            inputs={a: TensorInfo(t.name, int(t.dtype), _shape(t.tensor_shape)) for a, t in sig.inputs.items()},
            outputs={a: TensorInfo(t.name, int(t.dtype), _shape(t.tensor_shape)) for a, t in sig.outputs.items()},
            defaults={a: _codec.decode(t) for a, t in sig.defaults.items()},
            method_name=sig.method_name,
        )
    return signatures


class CppRuntime:
    """One child process with one `libtensorflow_cc.so.2` loaded; it can load many SavedModels.

    Use as a context manager, or call `close()`. Closing it ends the process and every
    model loaded through it.
    """

    def __init__(
        self,
        library: str | Path | None = None,
        *,
        env: Mapping[str, str] | None = None,
        timeout: float = 600.0,
    ) -> None:
        """Starts the child and loads the library.

        Args:
            library: A `libtensorflow_cc.so.2`, or a directory holding it and
                `libtensorflow_framework.so.2`; the installed TensorFlow's by default.
            env: Extra environment of the child (e.g. TF_ENABLE_ONEDNN_OPTS=0, read when
                the library loads). TF_CPP_MIN_LOG_LEVEL defaults to 2, and the served
                defaults of `model_server._tf_env` apply unless set here or in this
                process's environment.
            timeout: Seconds any one request may take before the child is killed.

        Raises:
            CppLoaderError: The library is missing, not loadable, or lacks the C API.
        """
        self.library = _resolve_library(library)
        self.timeout = timeout
        # The served runtime settings (TF_ENABLE_ONEDNN_OPTS=1 unless set), as the bundled
        # server and TF Serving in configs/ run: the child loads its own TF library.
        child_env = child_environment(
            {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
        )
        child_env.update(env or {})
        # TF's own logging may be long; a file never blocks the child the way a full pipe would.
        self._stderr = tempfile.TemporaryFile()
        self._process = subprocess.Popen(
            [sys.executable, "-P", str(CHILD_SCRIPT), str(self.library)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=child_env,
        )
        # Both are pipes (PIPE above), never None; Popen's types cannot say so.
        self._stdin = cast(IO[bytes], self._process.stdin)
        self._stdout = cast(IO[bytes], self._process.stdout)
        self._finalizer = weakref.finalize(self, _kill, self._process, self._stderr)
        self._closed = False
        hello = self._receive("library")
        self.version: str = hello["version"]
        self.pid: int = hello["pid"]

    def load(
        self, export_dir: str | Path, *, tags: tuple[str, ...] = ("serve",), config: bytes | None = None
    ) -> CppSavedModel:
        """Loads a SavedModel with TF_LoadSessionFromSavedModel.

        Args:
            export_dir: A SavedModel (version) directory.
            tags: MetaGraph tags (TF Serving uses "serve").
            config: A serialized `tensorflow.ConfigProto` for the session (e.g. thread counts).

        Raises:
            CppLoaderError: TF refused the SavedModel (its code and message).
        """
        export_dir = Path(export_dir).resolve()
        reply = self._request(
            "load", {"export_dir": str(export_dir), "tags": list(tags), "config": config}
        )
        return CppSavedModel(self, reply["handle"], export_dir, parse_signatures(reply["meta_graph_def"]))

    def stderr_tail(self, lines: int = 20) -> str:
        """The last lines the child wrote to stderr (TF's log)."""
        self._stderr.seek(0)
        return "\n".join(self._stderr.read().decode("utf-8", "replace").splitlines()[-lines:])

    def _request(self, op: str, args: dict[str, Any]) -> Any:
        if self._closed:
            raise CppLoaderError("The runtime is closed.", code=None, library=self.library, stage=op)
        data = dump_frame((op, args))
        try:
            self._stdin.write(_HEADER.pack(len(data)) + data)
            self._stdin.flush()
        except (BrokenPipeError, OSError):
            self._died(op)
        return self._receive(op)

    def _read(self, size: int, op: str) -> bytes:
        selector = selectors.DefaultSelector()
        selector.register(self._stdout, selectors.EVENT_READ)
        chunks, remaining = [], size
        try:
            while remaining:
                if not selector.select(self.timeout):
                    self._kill()
                    raise CppLoaderError(
                        f"No answer within {self.timeout:.0f} s; the child was killed.",
                        code=None, library=self.library, stage=op,
                    )
                chunk = os.read(self._stdout.fileno(), remaining)
                if not chunk:
                    self._died(op)
                chunks.append(chunk)
                remaining -= len(chunk)
        finally:
            selector.close()
        return b"".join(chunks)

    def _receive(self, op: str) -> Any:
        (length,) = _HEADER.unpack(self._read(_HEADER.size, op))
        status, payload = load_frame(self._read(length, op))
        if status == "ok":
            return payload
        if payload["stage"] == "library":
            self._kill()
        raise CppLoaderError(payload["message"], code=payload["code"], library=self.library, stage=payload["stage"])

    def _died(self, op: str) -> NoReturn:
        try:
            returncode = self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._kill()
            returncode = self._process.returncode
        how = (
            f"killed by signal {signal.Signals(-returncode).name}"
            if returncode is not None and returncode < 0
            else f"exit status {returncode}"
        )
        tail = self.stderr_tail()
        self._closed = True
        raise CppLoaderError(
            f"The C++-loader process died ({how}).{' Its last log lines:' + chr(10) + tail if tail else ''}",
            code=None, library=self.library, stage=op,
        )

    def _kill(self) -> None:
        self._closed = True
        self._finalizer()

    def close(self) -> None:
        """Ends the child (and every model it holds); idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            data = dump_frame(("exit", {}))
            self._stdin.write(_HEADER.pack(len(data)) + data)
            self._stdin.close()
            self._process.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self._finalizer()

    def __enter__(self) -> CppRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _kill(process: subprocess.Popen, stderr: Any) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()
    for stream in (process.stdin, process.stdout):
        try:
            if stream is not None:
                stream.close()
        except OSError:
            pass
    stderr.close()


class CppSavedModel:
    """A SavedModel loaded by the C++ loader in a `CppRuntime`'s process: run signatures by alias."""

    def __init__(
        self, runtime: CppRuntime, handle: int, export_dir: Path, signatures: dict[str, SignatureInfo],
        *, owns_runtime: bool = False,
    ) -> None:
        self.runtime = runtime
        self.export_dir = export_dir
        self.signatures = signatures
        self._handle = handle
        self._owns_runtime = owns_runtime
        self._closed = False

    def _resolve(
        self, signature: str, inputs: Mapping[str, Any], outputs: tuple[str, ...] | None
    ) -> tuple[list[tuple[str, np.ndarray]], list[str], list[str]]:
        if self._closed:
            raise CppLoaderError("The model is closed.", code=None, library=self.runtime.library, stage="run")
        if signature not in self.signatures:
            raise CppLoaderError(
                f"Unknown signature {signature!r}; the SavedModel has {sorted(self.signatures)}.",
                code=3, library=self.runtime.library, stage="run",
            )
        sig = self.signatures[signature]
        unknown = sorted(set(inputs) - set(sig.inputs))
        if unknown:
            raise CppLoaderError(
                f"Signature {signature!r} has no inputs {unknown}; expected aliases among {sorted(sig.inputs)}.",
                code=3, library=self.runtime.library, stage="run",
            )
        missing = sorted(set(sig.inputs) - set(inputs) - set(sig.defaults))
        if missing:
            raise CppLoaderError(
                f"Signature {signature!r} needs inputs {missing} (they have no default); "
                f"received {sorted(inputs)}.",
                code=3, library=self.runtime.library, stage="run",
            )
        aliases = list(outputs or sig.outputs)
        unknown = sorted(set(aliases) - set(sig.outputs))
        if unknown:
            raise CppLoaderError(
                f"Signature {signature!r} has no outputs {unknown}; it has {sorted(sig.outputs)}.",
                code=3, library=self.runtime.library, stage="run",
            )
        feeds = []
        for alias, value in inputs.items():
            info = sig.inputs[alias]
            expected = _DTYPES.get(info.dtype)
            array = np.asarray(value, dtype=object if expected is np.object_ else expected)
            feeds.append((info.name, array))
        return feeds, [sig.outputs[a].name for a in aliases], aliases

    def run(
        self, signature: str, inputs: Mapping[str, Any], outputs: tuple[str, ...] | None = None
    ) -> dict[str, np.ndarray]:
        """Runs a signature once with TF_SessionRun.

        Inputs left out are not fed, so the graph's defaults apply, as in TF Serving for
        inputs with a `SignatureDef.defaults` entry.

        Args:
            signature: Signature name (e.g. "explain").
            inputs: alias → array (converted to the input's dtype; bytes for TF_STRING).
            outputs: Output aliases to fetch (all by default).

        Returns:
            alias → numpy array.

        Raises:
            CppLoaderError: Unknown signature/alias, a required input missing, or TF's
                error (code and message) from the run.
        """
        feeds, fetches, aliases = self._resolve(signature, inputs, outputs)
        values = self.runtime._request("run", {"handle": self._handle, "feeds": feeds, "fetches": fetches})
        return dict(zip(aliases, values, strict=True))

    def run_traced(
        self,
        signature: str,
        inputs: Mapping[str, Any],
        outputs: tuple[str, ...] | None = None,
        *,
        run_options: bytes = FULL_TRACE,
    ) -> tuple[dict[str, np.ndarray], bytes]:
        """Runs a signature once with RunOptions, returning the outputs and the RunMetadata.

        Args:
            signature / inputs / outputs: As for `run`.
            run_options: A serialized `tensorflow.RunOptions`; FULL_TRACE by default, so the
                RunMetadata holds the step stats (per-op times) of TF Serving's runtime.

        Returns:
            (alias → array, the serialized `tensorflow.RunMetadata`).
        """
        feeds, fetches, aliases = self._resolve(signature, inputs, outputs)
        reply = self.runtime._request(
            "run", {"handle": self._handle, "feeds": feeds, "fetches": fetches, "run_options": run_options}
        )
        return dict(zip(aliases, reply["outputs"], strict=True)), reply["run_metadata"] or b""

    def run_tensors(self, feeds: Mapping[str, Any], fetches: list[str]) -> dict[str, np.ndarray]:
        """One TF_SessionRun by graph tensor names (`op:index`), e.g. several signatures at once.

        Raises:
            CppLoaderError: TF's error (code and message), e.g. NOT_FOUND for an unknown tensor.
        """
        if self._closed:
            raise CppLoaderError("The model is closed.", code=None, library=self.runtime.library, stage="run")
        pairs = [(name, np.asarray(value)) for name, value in feeds.items()]
        values = self.runtime._request("run", {"handle": self._handle, "feeds": pairs, "fetches": list(fetches)})
        return dict(zip(fetches, values, strict=True))

    def benchmark(
        self,
        signature: str,
        inputs: Mapping[str, Any],
        *,
        repeats: int = 10,
        warmup: int = 2,
        outputs: tuple[str, ...] | None = None,
    ) -> np.ndarray:
        """Times `repeats` TF_SessionRun calls (after `warmup` untimed ones) in the child.

        The input tensors are built once; each timed call is one TF_SessionRun plus the
        deletion of its outputs.

        Returns:
            Seconds of each timed run, shape [repeats].
        """
        feeds, fetches, _ = self._resolve(signature, inputs, outputs)
        reply = self.runtime._request(
            "benchmark",
            {"handle": self._handle, "feeds": feeds, "fetches": fetches, "repeats": repeats, "warmup": warmup},
        )
        return np.asarray(reply["seconds"])

    def close(self) -> None:
        """Frees the session (and ends the runtime if this model owns it); idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if not self.runtime._closed:
                self.runtime._request("unload", {"handle": self._handle})
        finally:
            if self._owns_runtime:
                self.runtime.close()

    def __enter__(self) -> CppSavedModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_saved_model(
    export_dir: str | Path,
    library: str | Path | None = None,
    *,
    tags: tuple[str, ...] = ("serve",),
    env: Mapping[str, str] | None = None,
    config: bytes | None = None,
    timeout: float = 600.0,
) -> CppSavedModel:
    """Starts a runtime for `library` and loads one SavedModel; closing the model ends both.

    Raises:
        CppLoaderError: See `CppRuntime` and `CppRuntime.load`.
    """
    runtime = CppRuntime(library, env=env, timeout=timeout)
    try:
        model = runtime.load(export_dir, tags=tags, config=config)
    except BaseException:
        runtime.close()
        raise
    model._owns_runtime = True
    return model
