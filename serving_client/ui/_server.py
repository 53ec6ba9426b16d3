"""Run the viewer: bind, check the address rules, print the URL, serve until Ctrl-C."""

from __future__ import annotations

import ipaddress
import socket
import sys
from collections.abc import Sequence
from typing import TextIO

from ._app import DEFAULT_MAX_UPLOAD_BYTES, ViewerSettings, create_app

__all__ = ["allowed_hosts", "is_loopback", "serve"]

#: What ``saliency-client ui`` prints once it listens; tests and ``make ui`` read the URL from it.
URL_LINE = "Saliency viewer at {url} (model server {server}); Ctrl-C stops it."


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine's loopback interface only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(host: str, port: int, extra: Sequence[str] = ()) -> frozenset[str]:
    """The ``Host`` header values that name a viewer listening on ``host:port``.

    Args:
        host: the listen address; a loopback address also answers as ``localhost`` and
            ``127.0.0.1``. A wildcard (``0.0.0.0``, ``::``) is never a Host itself.
        port: the port listened on.
        extra: more names clients use (``--allowed-host``), with or without ``:port``.

    Returns:
        ``host:port`` strings (``[v6]:port`` for IPv6 addresses).
    """

    def with_port(name: str) -> str:
        if name.startswith("[") or name.count(":") == 1:
            return name
        if ":" in name:  # a bare IPv6 address
            return f"[{name}]:{port}"
        return f"{name}:{port}"

    names = set()
    if host not in ("0.0.0.0", "::", ""):  # noqa: S104 - compared, not bound
        names.add(with_port(host))
    if is_loopback(host):
        names.update({f"localhost:{port}", f"127.0.0.1:{port}"})
    names.update(with_port(name) for name in extra)
    return frozenset(names)


def serve(
    *,
    server: str,
    model: str | None,
    host: str = "127.0.0.1",
    port: int = 8080,
    allow_remote: bool = False,
    extra_hosts: Sequence[str] = (),
    timeout: float = 30.0,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    class_names: tuple[str, ...] | None = None,
    out: TextIO = sys.stdout,
) -> int:
    """Serve the viewer until interrupted.

    Args:
        server: ``host:port`` of the model server's gRPC API.
        model: the model the page opens with.
        host: the address to listen on; loopback unless ``allow_remote``.
        port: the port to listen on (0: any free port, printed).
        allow_remote: permit a non-loopback ``host``. The viewer has no authentication.
        extra_hosts: more Host names to answer (needed with a wildcard ``host``).
        timeout: deadline of each gRPC call, in seconds.
        max_upload_bytes: the largest upload accepted.
        class_names: class names by index, or ``None``.
        out: where the URL line is printed.

    Returns:
        0 once stopped.

    Raises:
        ValueError: for a non-loopback ``host`` without ``allow_remote``, or a wildcard
            without ``extra_hosts``.
        OSError: if the address cannot be bound.
    """
    import uvicorn

    if not is_loopback(host) and not allow_remote:
        raise ValueError(
            f"--host {host} listens beyond this machine's loopback interface, and the viewer "
            "has no authentication; pass --allow-remote to do it anyway, or use --host 127.0.0.1."
        )
    if host in ("0.0.0.0", "::") and not extra_hosts:  # noqa: S104 - compared, not bound
        raise ValueError(
            f"--host {host} listens on every interface, but a browser names one of them; pass "
            "--allowed-host NAME[:PORT] with the name or address clients will use."
        )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host.strip("[]"), port))
    # Listening before the URL is printed: connections wait in the backlog until uvicorn runs.
    listener.listen(128)
    bound_port = listener.getsockname()[1]
    settings = ViewerSettings(
        server=server,
        model=model,
        allowed_hosts=allowed_hosts(host, bound_port, extra_hosts),
        timeout=timeout,
        max_upload_bytes=max_upload_bytes,
        class_names=class_names,
    )
    shown_host = f"[{host}]" if ":" in host else host
    if host in ("0.0.0.0", "::"):  # noqa: S104 - compared, not bound
        shown_host = sorted(settings.allowed_hosts)[0].rsplit(":", 1)[0]
    url = f"http://{shown_host}:{bound_port}/"
    config = uvicorn.Config(
        create_app(settings), log_level="warning", access_log=False, lifespan="off"
    )
    print(URL_LINE.format(url=url, server=server), file=out, flush=True)
    try:
        uvicorn.Server(config).run(sockets=[listener])
    finally:
        settings.close()
        listener.close()
    return 0
