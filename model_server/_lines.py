"""The server's stable stdout lines: written by the CLI, read by everything that starts it.

TF Serving prints the first two lines (tools that wait for them work with either server); the
ready line is ours. Logs go to stderr, so stdout carries only these lines:

    Running gRPC ModelServer at HOST:PORT ...
    Exporting HTTP/REST API at HOST:PORT ...
    All models AVAILABLE: NAME@V[,V...] [NAME@V ...]

An IPv6 host is bracketed (`[::1]:8500`). This module is the one home of that format: the
CLI writes with the `format_*` functions, and `ServerProcess`, the tests, the benchmarks and
the soak read with `parse_line` (or `StartupLines`). It needs neither TensorFlow nor grpc.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "GRPC_PREFIX",
    "READY_PREFIX",
    "REST_PREFIX",
    "PortLine",
    "ReadyLine",
    "StartupLines",
    "format_grpc_line",
    "format_ready_line",
    "format_rest_line",
    "join_host_port",
    "parse_line",
]

GRPC_PREFIX = "Running gRPC ModelServer at "
REST_PREFIX = "Exporting HTTP/REST API at "
READY_PREFIX = "All models AVAILABLE:"
_PORT_SUFFIX = " ..."

_PORT_LINES: tuple[tuple[Literal["grpc", "rest"], str], ...] = (("grpc", GRPC_PREFIX), ("rest", REST_PREFIX))
_ADDRESS = re.compile(r"(\S+):(\d+)")
# Lazy name, so a configured name with spaces (TF Serving allows one) still reads back.
_MODEL = re.compile(r"(.+?)@(\d+(?:,\d+)*)(?:\s+|$)")


def join_host_port(host: str, port: int) -> str:
    """`HOST:PORT`, with an IPv6 host in brackets (`[::1]:8500`)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def format_grpc_line(host: str, port: int) -> str:
    """The line announcing the bound gRPC port, e.g. `Running gRPC ModelServer at 127.0.0.1:8500 ...`."""
    return f"{GRPC_PREFIX}{join_host_port(host, port)}{_PORT_SUFFIX}"


def format_rest_line(host: str, port: int) -> str:
    """The line announcing the bound REST port, e.g. `Exporting HTTP/REST API at 127.0.0.1:8501 ...`."""
    return f"{REST_PREFIX}{join_host_port(host, port)}{_PORT_SUFFIX}"


def format_ready_line(available: Mapping[str, Sequence[int]]) -> str:
    """The line printed once every model has a version loaded: `All models AVAILABLE: a@1 b@2,3`.

    Args:
        available: Each model's available versions, in the order they are printed.
    """
    models = " ".join(
        f"{name}@{','.join(str(int(v)) for v in versions)}" for name, versions in available.items()
    )
    return f"{READY_PREFIX} {models}"


@dataclass(frozen=True)
class PortLine:
    """A parsed port line: which API, and where it listens (`host` without IPv6 brackets)."""

    api: Literal["grpc", "rest"]
    host: str
    port: int

    @property
    def address(self) -> str:
        """`HOST:PORT` as printed."""
        return join_host_port(self.host, self.port)


@dataclass(frozen=True)
class ReadyLine:
    """A parsed ready line: each model's available versions."""

    models: dict[str, tuple[int, ...]] = field(default_factory=dict)


def parse_line(line: str) -> PortLine | ReadyLine | None:
    """Reads one stdout line of the server.

    Args:
        line: The line, with or without its trailing newline.

    Returns:
        A `PortLine` or `ReadyLine`, or None for any other line (so callers can skip them).

    Raises:
        ValueError: The line starts like a protocol line but its address or model list is
            malformed (a server of another version, or a corrupted stream).
    """
    line = line.rstrip("\r\n")
    for api, prefix in _PORT_LINES:
        if line.startswith(prefix):
            match = _ADDRESS.match(line, len(prefix))
            if match is None:
                raise ValueError(
                    f"Expected HOST:PORT after {prefix.strip()!r}; received the line {line!r}."
                )
            host = match.group(1)
            if host.startswith("[") and host.endswith("]"):
                host = host[1:-1]
            return PortLine(api, host, int(match.group(2)))
    if line.startswith(READY_PREFIX):
        rest = line[len(READY_PREFIX) :].strip()
        models: dict[str, tuple[int, ...]] = {}
        position = 0
        while position < len(rest):
            match = _MODEL.match(rest, position)
            if match is None:
                raise ValueError(
                    f"Expected NAME@V[,V...] entries after {READY_PREFIX!r}; received "
                    f"{rest[position:]!r} in the line {line!r}."
                )
            models[match.group(1)] = tuple(int(v) for v in match.group(2).split(","))
            position = match.end()
        return ReadyLine(models)
    return None


@dataclass
class StartupLines:
    """What a reader has learned from the server's stdout so far.

    Feed it every line; `feed` returns True once the ready line has been seen.
    """

    grpc: PortLine | None = None
    rest: PortLine | None = None
    ready: ReadyLine | None = None

    def feed(self, line: str) -> bool:
        """Records `line` if it is a protocol line; returns whether the server is ready.

        Raises:
            ValueError: A malformed protocol line (see `parse_line`).
        """
        parsed = parse_line(line)
        if isinstance(parsed, PortLine):
            if parsed.api == "grpc":
                self.grpc = parsed
            else:
                self.rest = parsed
        elif isinstance(parsed, ReadyLine):
            self.ready = parsed
        return self.ready is not None
