"""The bundled model server as a subprocess, so client and server never share a GIL."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO

__all__ = ["ServerProcess"]

_GRPC_LINE = re.compile(r"^Running gRPC ModelServer at (\S+):(\d+)")
_REST_LINE = re.compile(r"^Exporting HTTP/REST API at (\S+):(\d+)")
_READY_LINE = re.compile(r"^All models AVAILABLE:")


class ServerProcess:
    """``python -m model_server`` on 127.0.0.1 with free ports; stdout's ready lines parsed.

    Args:
        model_name: ``--model_name``.
        base_path: ``--model_base_path``.
        log_path: Where the server's stderr goes (kept for a post-mortem).
        startup_timeout: Seconds to wait for the ready line.
    """

    def __init__(
        self, model_name: str, base_path: Path, log_path: Path, startup_timeout: float = 120.0
    ) -> None:
        self.model_name = model_name
        self.base_path = base_path
        self.log_path = log_path
        self.startup_timeout = startup_timeout
        self.grpc_port: int | None = None
        self.rest_port: int | None = None
        self._process: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()

    @property
    def grpc_target(self) -> str:
        """``127.0.0.1:PORT`` of the gRPC API."""
        return f"127.0.0.1:{self.grpc_port}"

    def start(self) -> ServerProcess:
        """Starts the server and waits for its ports and its ready line.

        Raises:
            RuntimeError: The server exited or was not ready within `startup_timeout`.
        """
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
        command = [
            sys.executable, "-m", "model_server",
            "--host=127.0.0.1", "--port=auto", "--rest_api_port=auto",
            f"--model_name={self.model_name}", f"--model_base_path={self.base_path.resolve()}",
            "--file_system_poll_wait_seconds=0",
        ]  # fmt: skip
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "w") as log:
            self._process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=log, text=True, env=env
            )
        threading.Thread(
            target=self._pump, args=(self._process.stdout,), daemon=True, name="server-stdout"
        ).start()
        deadline = time.monotonic() + self.startup_timeout
        ready = False
        while not ready:
            try:
                line = self._lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                self.stop()
                raise RuntimeError(
                    f"The model server was not ready within {self.startup_timeout:g} s; "
                    f"see {self.log_path}."
                ) from None
            if line is None:
                raise RuntimeError(
                    f"The model server exited with code {self._process.wait()} before it was "
                    f"ready; see {self.log_path}."
                )
            if match := _GRPC_LINE.match(line):
                self.grpc_port = int(match.group(2))
            elif match := _REST_LINE.match(line):
                self.rest_port = int(match.group(2))
            ready = bool(_READY_LINE.match(line))
        if self.grpc_port is None or self.rest_port is None:
            self.stop()
            raise RuntimeError(f"The server did not print both port lines; see {self.log_path}.")
        return self

    def _pump(self, stdout: IO[str]) -> None:
        for line in stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (graceful drain), then SIGKILL if it does not exit in `timeout` seconds."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
