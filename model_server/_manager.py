"""Which versions are loaded, and the poller that follows the base paths on disk.

Mirrors TF Serving's AspiredVersionsManager with the availability-preserving policy: a new
version is loaded and warmed up first, traffic moves to it once it is AVAILABLE, and only then
is the old one unloaded (after its in-flight requests finish). A version that fails to load is
recorded (END with its error) and the versions already serving stay.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from serving_client.contract import WARMUP_ASSET

from ._config import ModelConfig
from ._errors import ServingError, invalid_argument, not_found
from ._servable import LoadedServable, load_saved_model

if TYPE_CHECKING:
    import grpc

log = logging.getLogger("model_server")

WARMUP_FILE = Path(WARMUP_ASSET)
MAX_WARMUP_RECORDS = 1000  # TF Serving's kMaxNumRecords in saved_model_warmup_util.cc


class State(enum.IntEnum):
    """ModelVersionStatus.State numbers (get_model_status.proto)."""

    START = 10
    LOADING = 20
    AVAILABLE = 30
    UNLOADING = 40
    END = 50


@dataclasses.dataclass(frozen=True)
class VersionStatus:
    """The state of one version, as GetModelStatus reports it."""

    version: int
    state: State
    error: ServingError | None = None


@dataclasses.dataclass
class _Version:
    version: int
    state: State
    error: ServingError | None = None
    servable: LoadedServable | None = None
    fingerprint: tuple | None = None


WarmupRunner = Callable[[LoadedServable, object], None]


class ServableManager:
    """Loads, serves and unloads versions of the configured models.

    Args:
        models: the models to serve.
        warmup: called with (servable, PredictRequest) for each warmup record; raising fails
            the load.
        unload_grace_seconds: how long an unloading version waits for in-flight requests.
        xla_cpu_compilation_enabled: ``--xla_cpu_compilation_enabled``: load versions whose
            graph must be XLA-compiled (refused otherwise, see ``model_server._xla``).
    """

    def __init__(
        self,
        models: list[ModelConfig],
        warmup: WarmupRunner,
        *,
        unload_grace_seconds: float = 30.0,
        xla_cpu_compilation_enabled: bool = False,
    ) -> None:
        self._models = {m.name: m for m in models}
        self._versions: dict[str, dict[int, _Version]] = {m.name: {} for m in models}
        self._warmup = warmup
        self._grace = unload_grace_seconds
        self._xla = xla_cpu_compilation_enabled
        self._lock = threading.RLock()
        self._poll_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned_empty: set[str] = set()

    # ---- requests -------------------------------------------------------------------------

    @property
    def model_names(self) -> list[str]:
        return list(self._models)

    @contextlib.contextmanager
    def handle(
        self, name: str, version: int | None = None, label: str | None = None
    ) -> Iterator[LoadedServable]:
        """Hold a reference to the requested servable for the duration of a request.

        Raises:
            ServingError: NOT_FOUND ``Servable not found for request: Latest(name)`` /
                ``Specific(name, v)`` as TF Serving's manager; INVALID_ARGUMENT
                ``Unrecognized servable version label: l``.
        """
        servable = self._acquire(name, version, label)
        try:
            yield servable
        finally:
            servable.release()

    def _acquire(self, name: str, version: int | None, label: str | None) -> LoadedServable:
        with self._lock:
            if label:
                labels = self._models[name].version_labels if name in self._models else {}
                if label not in labels:
                    raise invalid_argument(f"Unrecognized servable version label: {label}")
                version = labels[label]
            versions = self._versions.get(name, {})
            entry: _Version | None
            if version is None:
                available = [v for v in versions.values() if v.state == State.AVAILABLE]
                if not available:
                    raise not_found(f"Servable not found for request: Latest({name})")
                entry = max(available, key=lambda v: v.version)
            else:
                entry = versions.get(version)
                if entry is None or entry.state != State.AVAILABLE:
                    raise not_found(
                        f"Servable not found for request: Specific({name}, {version})"
                    )
            if entry.servable is None:  # an AVAILABLE entry always has one; be loud if not
                raise RuntimeError(f"{name} version {entry.version} is AVAILABLE without a session")
            entry.servable.acquire()
            return entry.servable

    def status(self, name: str, version: int | None = None) -> list[VersionStatus]:
        """Every known version's state (ascending), or the one asked for.

        Raises:
            ServingError: NOT_FOUND as ``get_model_status_impl.cc``.
        """
        with self._lock:
            versions = self._versions.get(name, {})
            if version is not None:
                entry = versions.get(version)
                if entry is None:
                    raise not_found(f"Could not find version {version} of model {name}")
                return [VersionStatus(entry.version, entry.state, entry.error)]
            if not versions:
                raise not_found(f"Could not find any versions of model {name}")
            return [
                VersionStatus(v.version, v.state, v.error)
                for v in sorted(versions.values(), key=lambda v: v.version)
            ]

    def resolve_label(self, name: str, label: str) -> int:
        with self._lock:
            labels = self._models[name].version_labels if name in self._models else {}
            if label not in labels:
                raise invalid_argument(f"Unrecognized servable version label: {label}")
            return labels[label]

    def available_versions(self) -> dict[str, list[int]]:
        """AVAILABLE versions per model."""
        with self._lock:
            return {
                name: sorted(v.version for v in vs.values() if v.state == State.AVAILABLE)
                for name, vs in self._versions.items()
            }

    def all_models_available(self) -> bool:
        return all(self.available_versions().values())

    # ---- the poller -----------------------------------------------------------------------

    def start_polling(self, interval: float) -> None:
        """Re-scan every base path each ``interval`` seconds on a daemon thread."""
        if self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.poll_once()
                except Exception:  # the poller must survive anything a file system does
                    log.exception("file system poll failed")

        self._thread = threading.Thread(target=loop, name="model-server-poller", daemon=True)
        self._thread.start()

    def poll_once(self) -> None:
        """One pass over every model: load aspired versions, then unload the rest."""
        with self._poll_lock:
            for config in self._models.values():
                if self._stop.is_set():
                    return
                self._reconcile(config)

    def stop(self) -> None:
        """Stop polling and unload every version (waiting for in-flight requests)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        with self._poll_lock:
            for name, versions in self._versions.items():
                for entry in list(versions.values()):
                    if entry.servable is not None:
                        self._unload(name, entry)

    def _reconcile(self, config: ModelConfig) -> None:
        on_disk = _versions_on_disk(config.base_path)
        aspired = config.policy.aspired(on_disk)
        versions = self._versions[config.name]
        if not on_disk and not versions and config.name not in self._warned_empty:
            self._warned_empty.add(config.name)
            log.warning(
                "No versions of servable %s found under base path %s",
                config.name,
                config.base_path,
            )
        for version in sorted(aspired, reverse=True):
            entry = versions.get(version)
            fingerprint = _fingerprint(config.base_path / str(version))
            if entry is not None:
                if entry.state in (State.LOADING, State.AVAILABLE, State.UNLOADING):
                    continue
                if entry.error is not None and entry.fingerprint == fingerprint:
                    continue  # failed before and nothing on disk has changed: no retry loop
            self._load(config, version, fingerprint)
        with self._lock:
            any_aspired_available = any(
                versions[v].state == State.AVAILABLE for v in aspired if v in versions
            )
            retire = [
                e
                for v, e in versions.items()
                if v not in aspired
                and e.state == State.AVAILABLE
                and (any_aspired_available or not aspired)
            ]
        for entry in retire:
            self._unload(config.name, entry)

    def _load(self, config: ModelConfig, version: int, fingerprint: tuple | None) -> None:
        path = config.base_path / str(version)
        entry = _Version(version, State.LOADING, fingerprint=fingerprint)
        with self._lock:
            self._versions[config.name][version] = entry
        log.info("Loading servable version {name: %s version: %d} from %s", config.name, version, path)
        servable: LoadedServable | None = None
        try:
            servable = load_saved_model(config.name, version, path, xla_cpu_compilation_enabled=self._xla)
            replayed = self._run_warmup(servable)
        except Exception as exc:
            if servable is not None:
                servable.close(timeout=0)
            message = _load_error_message(exc)
            with self._lock:
                entry.state = State.END
                entry.error = ServingError(_load_error_code(exc), message)
            log.error(
                "Loading servable version {name: %s version: %d} failed: %s",
                config.name,
                version,
                message,
            )
            return
        with self._lock:
            entry.servable = servable
            entry.state = State.AVAILABLE
        log.info(
            "Successfully loaded servable version {name: %s version: %d} "
            "(warmup requests replayed: %d)",
            config.name,
            version,
            replayed,
        )

    def _run_warmup(self, servable: LoadedServable) -> int:
        path = servable.path / WARMUP_FILE
        if not path.is_file():
            return 0
        import tensorflow as tf
        from tensorflow_serving.apis import prediction_log_pb2

        count = 0
        for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
            count += 1
            if count > MAX_WARMUP_RECORDS:
                raise ValueError(
                    f"Number of warmup records exceeds the maximum ({MAX_WARMUP_RECORDS}) "
                    f"at {path}"
                )
            log_entry = prediction_log_pb2.PredictionLog()
            log_entry.ParseFromString(record)
            kind = log_entry.WhichOneof("log_type")
            if kind != "predict_log":
                raise ValueError(
                    f"warmup record {count} in {path} is a {kind}; this server replays "
                    "predict_log records only"
                )
            self._warmup(servable, log_entry.predict_log.request)
        return count

    def _unload(self, name: str, entry: _Version) -> None:
        with self._lock:
            servable = entry.servable
            if servable is None:
                return
            entry.state = State.UNLOADING
        log.info("Unloading servable version {name: %s version: %d}", name, entry.version)
        drained = servable.close(timeout=self._grace)
        with self._lock:
            entry.servable = None
            entry.state = State.END
        log.info(
            "Done unloading servable version {name: %s version: %d}%s",
            name,
            entry.version,
            "" if drained else " (grace period expired with requests still running)",
        )


def _versions_on_disk(base_path: Path) -> list[int]:
    # Only integer-named directories are versions; the exporter's `.tmp-export-*` siblings
    # and anything else are ignored.
    try:
        names = os.listdir(base_path)
    except OSError:
        return []
    versions = []
    for name in names:
        if name.isdigit() and (base_path / name).is_dir():
            versions.append(int(name))
    return versions


def _fingerprint(path: Path) -> tuple | None:
    # A failed version is retried only when its saved_model.pb changes (a fixed copy).
    try:
        st = (path / "saved_model.pb").stat()
        return (st.st_mtime_ns, st.st_size, st.st_ino)
    except OSError:
        return None


def _load_error_code(exc: Exception) -> grpc.StatusCode:
    import grpc

    from ._errors import code_from_number

    if isinstance(exc, ServingError):
        return exc.code
    error_code = getattr(exc, "error_code", None)
    if isinstance(error_code, int):
        return code_from_number(error_code)
    return grpc.StatusCode.UNKNOWN


def _load_error_message(exc: Exception) -> str:
    if isinstance(exc, ServingError):
        return f"warmup request failed: {exc.message}"
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return message.strip()
