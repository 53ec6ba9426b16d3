"""Request builders for the server tests, using only the official TF Serving protos."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import grpc
import numpy as np

from tests.server.server_test_models import C, H, W

MAX_MSG = 256 * 1024 * 1024

_A = TypeVar("_A")
_R = TypeVar("_R")


def images(batch: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((batch, H, W, C), dtype=np.float32)


def predict_request(
    name: str = "m",
    signature: str | None = None,
    *,
    version: int | None = None,
    label: str | None = None,
    output_filter: tuple[str, ...] = (),
    **inputs,
):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    req = predict_pb2.PredictRequest()
    req.model_spec.name = name
    if signature is not None:
        req.model_spec.signature_name = signature
    if version is not None:
        req.model_spec.version.value = version
    if label is not None:
        req.model_spec.version_label = label
    req.output_filter.extend(output_filter)
    for alias, value in inputs.items():
        req.inputs[alias].CopyFrom(value if hasattr(value, "dtype") and hasattr(value, "tensor_shape") else tf.make_tensor_proto(value))
    return req


def outputs(response) -> dict[str, np.ndarray]:
    import tensorflow as tf

    return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}


@contextlib.contextmanager
def traffic(server, *, batch: int = 2, clients: int = 3):
    """`clients` threads sending Predict until the block ends; yields (versions seen, failures)."""
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    seen: list[int] = []
    failures: list[str] = []
    stop = threading.Event()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.ports.grpc}")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

    def client() -> None:
        x = images(batch)
        for _ in range(100_000):  # bounded; the event ends it long before
            if stop.is_set():
                break
            try:
                seen.append(stub.Predict(predict_request(images=x), timeout=10).model_spec.version.value)
            except grpc.RpcError as err:
                failures.append(f"{err.code()}: {err.details()}")

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    try:
        yield seen, failures
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        channel.close()


def concurrently(call: Callable[[_A], _R], args: Sequence[_A], timeout: float = 60.0) -> list[_R | Exception | None]:
    """``call(arg)`` for every arg, each in its own thread, all started before any is joined (so
    a batching scheduler or server sees them together). Returns the results in order, with the
    exception a call raised in its place (recorded for the test to assert on), or None for a
    call still running after ``timeout`` seconds of its join."""
    results: list[_R | Exception | None] = [None] * len(args)

    def one(i: int) -> None:
        try:
            results[i] = call(args[i])
        except Exception as exc:  # noqa: BLE001 - recorded and checked by the test
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(args))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return results


def install(src: Path, dest: Path) -> Path:
    """Publish ``src`` as version dir ``dest`` atomically (copy to a hidden sibling, rename),
    the way the exporter publishes versions."""
    tmp = dest.parent / f".tmp-export-{dest.name}-{time.monotonic_ns()}"
    shutil.copytree(src, tmp)
    os.replace(tmp, dest)
    return dest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0, step: float = 0.05) -> bool:
    """Poll ``predicate`` until true or ``timeout``; bounded, never infinite."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
