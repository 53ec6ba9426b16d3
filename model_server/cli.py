"""``saliency-serve`` / ``python -m model_server``: TF Serving's flags over ``ModelServer``.

Stdout carries only the stable port and ready lines (logs go to stderr); their format, writer
and parser have one home, `model_server._lines`.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from ._batching import BatchingOptions
from ._config import parse_model_config_file
from ._lines import format_grpc_line, format_ready_line, format_rest_line
from ._server import MiB, ModelServer, ModelServerError, ServerOptions
from ._tls import SslOptions


def _port(value: str) -> int:
    if value == "auto":
        return -1
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number or `auto`, got {value!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port in [0, 65535] or `auto`, got {port}")
    return port


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="saliency-serve",
        description="A TensorFlow-Serving-compatible model server (gRPC + REST) for SavedModels.",
    )
    p.add_argument("--port", type=_port, default=8500,
                   help="gRPC port (default 8500); 0 or `auto` picks a free port")
    p.add_argument("--rest_api_port", type=_port, default=8501,
                   help="REST port (default 8501); 0 disables REST (as TF Serving); `auto` picks a free port")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; use 0.0.0.0 to listen on every interface)")
    p.add_argument("--model_name", default="default", help="model name (with --model_base_path)")
    p.add_argument("--model_base_path", help="directory holding integer-named version directories")
    p.add_argument("--model_config_file",
                   help="text-format ModelServerConfig (several models, version policies, labels)")
    p.add_argument("--file_system_poll_wait_seconds", type=float, default=1.0,
                   help="re-scan base paths every N seconds (default 1); 0 disables")
    p.add_argument("--grpc_max_message_bytes", type=int, default=512 * MiB,
                   help="gRPC send/receive message limit in bytes (default 512 MiB)")
    p.add_argument("--rest_api_max_body_bytes", type=int, default=64 * MiB,
                   help="REST request body limit in bytes (default 64 MiB)")
    p.add_argument("--grpc_max_threads", type=int, default=16, help="gRPC worker threads")
    p.add_argument("--shutdown_grace_seconds", type=float, default=10.0,
                   help="on SIGTERM/SIGINT, how long in-flight requests may finish")
    p.add_argument("--enable_batching", type=_bool, nargs="?", const=True, default=False,
                   help="batch concurrent requests server-side (default false)")
    p.add_argument("--batching_parameters_file",
                   help="text-format BatchingParameters (max_batch_size, batch_timeout_micros, "
                        "num_batch_threads, max_enqueued_batches, allowed_batch_sizes); needs "
                        "--enable_batching")
    p.add_argument("--ssl_config_file",
                   help="text-format SSLConfig (server_key, server_cert PEM contents; custom_ca, "
                        "client_verify for mutual TLS): serve gRPC over TLS")
    p.add_argument("--xla_cpu_compilation_enabled", type=_bool, nargs="?", const=True, default=False,
                   help="load models whose graph must be XLA-compiled (jit_compile); default false, "
                        "as TF Serving, which fails them")
    return p


def _bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def _read(path: str, flag: str) -> str:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError as exc:
        raise ValueError(f"cannot read {flag} {path}: {exc}") from exc


def options_from_args(args: argparse.Namespace) -> ServerOptions:
    """Turn parsed flags into ``ServerOptions``.

    Raises:
        ValueError: neither or both of --model_base_path / --model_config_file, or a bad config.
    """
    if bool(args.model_base_path) == bool(args.model_config_file):
        raise ValueError(
            "expected exactly one of --model_base_path (with --model_name) or --model_config_file; "
            f"got model_base_path={args.model_base_path!r}, model_config_file={args.model_config_file!r}"
        )
    if args.batching_parameters_file and not args.enable_batching:
        raise ValueError("--batching_parameters_file is only used with --enable_batching=true")
    batching = None
    if args.enable_batching:
        batching = BatchingOptions()
        if args.batching_parameters_file:
            batching = BatchingOptions.from_text(
                _read(args.batching_parameters_file, "--batching_parameters_file"),
                source=args.batching_parameters_file,
            )
    ssl = None
    if args.ssl_config_file:
        ssl = SslOptions.from_text(
            _read(args.ssl_config_file, "--ssl_config_file"), source=args.ssl_config_file
        )
    common = dict(
        port=max(args.port, 0),
        rest_api_port=None if args.rest_api_port == 0 else max(args.rest_api_port, 0),
        host=args.host,
        file_system_poll_wait_seconds=args.file_system_poll_wait_seconds,
        max_message_bytes=args.grpc_max_message_bytes,
        rest_api_max_body_bytes=args.rest_api_max_body_bytes,
        grpc_max_threads=args.grpc_max_threads,
        shutdown_grace_seconds=args.shutdown_grace_seconds,
        batching=batching,
        ssl=ssl,
        xla_cpu_compilation_enabled=args.xla_cpu_compilation_enabled,
    )
    if args.model_config_file:
        return ServerOptions(models=tuple(parse_model_config_file(args.model_config_file)), **common)
    return ServerOptions.single_model(args.model_name, args.model_base_path, **common)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until SIGTERM/SIGINT. Returns the process exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        options = options_from_args(args)
    except ValueError as exc:
        print(f"saliency-serve: error: {exc}", file=sys.stderr)
        return 2

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    server = ModelServer(options)
    try:
        ports = server.start()
    except ModelServerError as exc:
        print(f"saliency-serve: error: {exc}", file=sys.stderr)
        return 1
    print(format_grpc_line(options.host, ports.grpc), flush=True)
    if ports.rest is not None:
        print(format_rest_line(options.host, ports.rest), flush=True)
    announced = False
    while not stop.wait(0.2):
        if not announced and server.ready:
            print(format_ready_line(server.manager.available_versions()), flush=True)
            announced = True
    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
