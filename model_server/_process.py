"""The bundled server as a child process, for the examples, benchmarks, soak and fault tests.

A child process (rather than an in-process `ModelServer`) keeps the server's and the
client's Python apart, as in production, and can be killed. The ports are learned from
the server's stable stdout lines (`model_server._lines`), so `auto` ports work.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from ._lines import StartupLines

__all__ = ["ServerProcess"]


class ServerProcess:
    """`python -m model_server` serving one model, stopped (SIGTERM, then SIGKILL) on exit.

    Example:
        with ServerProcess("mnist", "models/mnist") as server:
            client = ServingClient(server.grpc_target, "mnist")

    Args:
        model_name: `--model_name`.
        base_path: `--model_base_path`.
        log_path: Where the server's stderr (its log) goes; discarded when None.
        host: `--host`.
        port: `--port` (`"auto"`: a free port).
        rest_api_port: `--rest_api_port` (`"auto"`: a free port; 0 disables REST).
        poll_seconds: `--file_system_poll_wait_seconds`.
        startup_timeout: Seconds to wait for the ready line.
        extra_args: More flags, e.g. `("--enable_batching=true",)`.
    """

    def __init__(
        self,
        model_name: str,
        base_path: str | Path,
        *,
        log_path: str | Path | None = None,
        host: str = "127.0.0.1",
        port: int | str = "auto",
        rest_api_port: int | str = "auto",
        poll_seconds: float = 1.0,
        startup_timeout: float = 180.0,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.model_name = model_name
        self.base_path = Path(base_path)
        self.log_path = Path(log_path) if log_path is not None else None
        self.startup_timeout = startup_timeout
        self.command = [
            sys.executable, "-m", "model_server",
            f"--host={host}", f"--port={port}", f"--rest_api_port={rest_api_port}",
            f"--model_name={model_name}", f"--model_base_path={self.base_path.resolve()}",
            f"--file_system_poll_wait_seconds={poll_seconds:g}", *extra_args,
        ]  # fmt: skip
        self._expects_rest = str(rest_api_port) != "0"
        self.grpc_port: int | None = None
        self.rest_port: int | None = None
        self.process: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()

    @property
    def grpc_target(self) -> str:
        """`127.0.0.1:PORT` of the gRPC API (after `start`)."""
        return f"127.0.0.1:{self.grpc_port}"

    def start(self, *, wait: bool = True) -> ServerProcess:
        """Starts the server; with `wait`, returns once every model is AVAILABLE.

        Raises:
            RuntimeError: The server exited, or was not ready within `startup_timeout`.
        """
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
        stderr: IO[str] | int
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            stderr = open(self.log_path, "a")  # noqa: SIM115 - the child keeps it open
        else:
            stderr = subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
                self.command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env
            )
        finally:
            if not isinstance(stderr, int):  # our log file, not subprocess.DEVNULL
                stderr.close()
        threading.Thread(
            target=self._pump, args=(self.process.stdout,), daemon=True, name="server-stdout"
        ).start()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float | None = None) -> None:
        """Blocks until the server prints its ready line (every model AVAILABLE).

        Raises:
            RuntimeError: The server exited first, or `timeout` (default `startup_timeout`)
                passed; the server is stopped in the second case.
        """
        deadline = time.monotonic() + (self.startup_timeout if timeout is None else timeout)
        where = f"; see {self.log_path}" if self.log_path else ""
        startup = StartupLines()
        while True:
            try:
                line = self._lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                self.stop()
                raise RuntimeError(
                    f"The model server was not ready within {self.startup_timeout:g} s{where}."
                ) from None
            if line is None:
                code = self.process.wait() if self.process else None
                raise RuntimeError(f"The model server exited with code {code} before it was ready{where}.")
            try:
                ready = startup.feed(line)
            except ValueError as error:
                self.stop()
                raise RuntimeError(f"The model server printed a malformed line: {error}{where}") from None
            if startup.grpc is not None:
                self.grpc_port = startup.grpc.port
            if startup.rest is not None:
                self.rest_port = startup.rest.port
            if ready:
                break
        if self.grpc_port is None or (self._expects_rest and self.rest_port is None):
            self.stop()
            raise RuntimeError(f"The model server did not print its port lines{where}.")

    def _pump(self, stdout: IO[str]) -> None:
        for line in stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (in-flight requests drain), then SIGKILL after `timeout` seconds.

        Returns:
            The exit code, or None if the server was not running.
        """
        process = self.process
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash would (no draining)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.process.wait(30)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
