"""``ModelServer``: the manager, the gRPC server and the REST server, started and stopped together."""

from __future__ import annotations

import dataclasses
import logging
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc

from ._batching import BatchingOptions, BatchScheduler
from ._config import ModelConfig, VersionPolicy
from ._core import ServingCore
from ._errors import ServingError
from ._grpc_service import build_grpc_server
from ._lines import join_host_port as _join_host_port
from ._manager import ServableManager
from ._predict import run_predict
from ._servable import LoadedServable
from ._tls import SslOptions

log = logging.getLogger("model_server")

MiB = 1 << 20


@dataclasses.dataclass(frozen=True)
class ServerOptions:
    """Everything ``ModelServer`` needs; the CLI flags map one to one.

    Args:
        models: the models to serve (at least one).
        port: gRPC port; 0 picks a free port.
        rest_api_port: REST port; 0 picks a free port, None disables REST.
        host: the address both servers bind (loopback unless told otherwise).
        file_system_poll_wait_seconds: base-path re-scan period; 0 or less disables polling
            after the initial load.
        max_message_bytes: gRPC send/receive limit.
        rest_api_max_body_bytes: REST request body limit.
        grpc_max_threads: gRPC worker threads.
        shutdown_grace_seconds: how long stop() lets in-flight requests finish.
        batching: server-side request batching (``--enable_batching``); None runs each
            request alone.
        ssl: TLS for gRPC (``--ssl_config_file``); None serves plaintext. REST stays plain
            HTTP, as in TF Serving.
        xla_cpu_compilation_enabled: load versions whose graph must be XLA-compiled; off by
            default, as in TF Serving, which then fails them (``model_server._xla``).
    """

    models: tuple[ModelConfig, ...]
    port: int = 8500
    rest_api_port: int | None = 8501
    host: str = "127.0.0.1"
    file_system_poll_wait_seconds: float = 1.0
    max_message_bytes: int = 512 * MiB
    rest_api_max_body_bytes: int = 64 * MiB
    grpc_max_threads: int = 16
    shutdown_grace_seconds: float = 10.0
    batching: BatchingOptions | None = None
    ssl: SslOptions | None = None
    xla_cpu_compilation_enabled: bool = False

    @classmethod
    def single_model(cls, name: str, base_path: str | Path, **kwargs: Any) -> ServerOptions:
        """Options for one model (``--model_name``/``--model_base_path``), latest version."""
        model = ModelConfig(name=name, base_path=Path(base_path), policy=VersionPolicy())
        return cls(models=(model,), **kwargs)


@dataclasses.dataclass(frozen=True)
class BoundPorts:
    """The ports the servers actually listen on (None: REST disabled)."""

    grpc: int
    rest: int | None


class ModelServerError(RuntimeError):
    """The server could not start (bad configuration, port in use, initial load failed)."""


class ModelServer:
    """A TF-Serving-compatible model server, in-process.

    Usage::

        with ModelServer(ServerOptions.single_model("m", "/models/m", port=0, rest_api_port=0)) as s:
            print(s.ports.grpc, s.ports.rest)
    """

    def __init__(self, options: ServerOptions) -> None:
        if not options.models:
            raise ModelServerError("ServerOptions.models is empty: configure at least one model")
        self.options = options
        self.manager = ServableManager(
            list(options.models),
            warmup=_replay_warmup,
            unload_grace_seconds=max(options.shutdown_grace_seconds, 1.0),
            xla_cpu_compilation_enabled=options.xla_cpu_compilation_enabled,
        )
        self._batcher: BatchScheduler | None = None
        self.core = ServingCore(self.manager)
        self._grpc: grpc.Server | None = None
        self._rest: ThreadingHTTPServer | None = None
        self._rest_thread: threading.Thread | None = None
        self._ports: BoundPorts | None = None
        self._stopped = False

    @property
    def ports(self) -> BoundPorts:
        if self._ports is None:
            raise ModelServerError("the server is not started; call start() first")
        return self._ports

    @property
    def ready(self) -> bool:
        """True once every configured model has at least one AVAILABLE version."""
        return self.manager.all_models_available()

    def request_counts(self) -> dict[tuple[str, str, str], int]:
        """Requests per (model, ``predict/<signature>`` or ``metadata``, status code name)."""
        return self.core.counters.snapshot()

    def limit_refusals(self) -> dict[tuple[str, str, str], int]:
        """Requests refused by an export's limits, per (model, signature, limit name)."""
        return self.core.limits.refusals()

    def start(self) -> BoundPorts:
        """Load the versions on disk, then bind and start gRPC and REST.

        Returns:
            The bound ports.

        Raises:
            ModelServerError: a model whose versions exist failed to load every one of them
                (as TF Serving, which refuses to start), or a port could not be bound.
        """
        if self._ports is not None:
            return self._ports
        self.manager.poll_once()
        failed = []
        for name in self.manager.model_names:
            try:
                statuses = self.manager.status(name)
            except ServingError:
                continue  # nothing on disk yet: wait for it, as TF Serving does
            if not any(s.state.name == "AVAILABLE" for s in statuses):
                errors = "; ".join(
                    f"version {s.version}: {s.error.message}" for s in statuses if s.error
                )
                failed.append(f"{name}: {errors}")
        if failed:
            self.manager.stop()
            raise ModelServerError("initial model load failed: " + " | ".join(failed))

        opts = self.options
        if opts.batching is not None:
            self._batcher = self.core.batcher = BatchScheduler(opts.batching)
        self._grpc = grpc_server = build_grpc_server(
            self.core, max_workers=opts.grpc_max_threads, max_message_bytes=opts.max_message_bytes
        )
        address = _join_host_port(opts.host, opts.port)
        cause: RuntimeError | None = None
        try:
            if opts.ssl is not None:
                grpc_port = grpc_server.add_secure_port(address, opts.ssl.server_credentials())
            else:
                grpc_port = grpc_server.add_insecure_port(address)
        except RuntimeError as exc:
            grpc_port = 0
            cause = exc
        if not grpc_port:
            self._stop_batcher()
            self.manager.stop()
            raise ModelServerError(f"cannot bind gRPC at {address}: {cause or 'port in use?'}")
        rest_port = None
        if opts.rest_api_port is not None:
            from ._rest import build_rest_server

            try:
                self._rest = rest_server = build_rest_server(
                    self.core, opts.host, opts.rest_api_port, max_body_bytes=opts.rest_api_max_body_bytes
                )
            except OSError as exc:
                self._stop_batcher()
                self.manager.stop()
                raise ModelServerError(
                    f"cannot bind REST at {_join_host_port(opts.host, opts.rest_api_port)}: {exc}"
                ) from exc
            rest_port = rest_server.server_address[1]
        grpc_server.start()
        if self._rest is not None:
            self._rest_thread = threading.Thread(
                target=self._rest.serve_forever, name="rest-server", daemon=True
            )
            self._rest_thread.start()
        if opts.file_system_poll_wait_seconds > 0:
            self.manager.start_polling(opts.file_system_poll_wait_seconds)
        self._ports = BoundPorts(grpc_port, rest_port)
        return self._ports

    def stop(self, grace: float | None = None) -> None:
        """Stop accepting, let in-flight requests finish (``grace`` seconds), unload all."""
        if self._stopped:
            return
        self._stopped = True
        grace = self.options.shutdown_grace_seconds if grace is None else grace
        if self._rest is not None:
            self._rest.shutdown()  # stops accepting; handler threads keep running
        if self._grpc is not None:
            self._grpc.stop(grace).wait(grace + 1)
        if self._rest is not None:
            self._rest.server_close()  # joins the handler threads
        self._stop_batcher()
        self.manager.stop()
        log.info("Server stopped")

    def _stop_batcher(self) -> None:
        if self._batcher is not None:
            self._batcher.stop()
            self._batcher = self.core.batcher = None

    def __enter__(self) -> ModelServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _replay_warmup(servable: LoadedServable, request: Any) -> None:
    # Warmup goes through the normal predict path; any failure fails the load. `request` is
    # a tensorflow_serving PredictRequest (no stubs).
    spec = request.model_spec
    run_predict(servable, spec.signature_name, request.inputs, list(request.output_filter))
