"""Issue "serving": what the network path adds to an `explain` call.

The bundled server runs as a subprocess on 127.0.0.1; in this process three variants are
interleaved call by call on the same images:

- ``inproc``: `Tf1SavedModel.run("explain")` — the session call alone, no server (through
  `Session.run`, whose Python feed/fetch handling costs 0.3-0.7 ms at batch 1 here);
- ``inproc_server_run``: `LoadedServable.run` in this process — the very call the server makes
  (the session's C run without `Session.run`'s Python), so ``grpc`` minus it is everything
  else the network path adds;
- ``grpc``: `serving_client.ServingClient.explain` (encode, Predict RPC, server-side validation
  and `*_val` encoding, decode);
- ``rest``: `POST /v1/models/mnist:predict` with `{"signature_name": "explain", "instances": ...}`
  over one keep-alive `http.client` connection, JSON encoded and decoded per call;
- ``grpc_stub``: the same Predict through the official ``tensorflow_serving.apis`` stub with a
  request built once (no client codec);
- ``grpc_floor``: `ServingClient.status()` (GetModelStatus), an RPC with next to no server work;
- ``echo_floor``: the same stub against `tests.benchmarks._echo_server`, a servicer with the
  bundled server's gRPC settings that answers the real server's explain response without a
  model: the bare transport floor (gRPC Python on both ends, the real response size).

The order is chosen: a call right after an in-process session run pays for this process's TF
pool threads spinning on (they were made with TF's defaults by the export before), which a real
client does not have, so the gRPC calls follow the TF-free ones.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from model_server import ServerProcess
from tests.benchmarks._fixture import MODEL_NAME, random_images
from tests.benchmarks._timing import interleaved

__all__ = ["BATCHES", "RestExplainer", "run"]

# batch → (timed calls per variant, warmup calls).
BATCHES: dict[int, tuple[int, int]] = {1: (200, 10), 32: (50, 5)}


@contextlib.contextmanager
def echo_server(responses_dir: Path) -> Iterator[str]:
    """`tests.benchmarks._echo_server` on `responses_dir` as a child; yields its target.

    Raises:
        RuntimeError: It exited before printing its port.
    """
    process = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
        [sys.executable, "-m", "tests.benchmarks._echo_server", str(responses_dir)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    try:
        assert process.stdout is not None  # stdout=PIPE
        line = process.stdout.readline().split()
        if len(line) != 2 or line[0] != "PORT":
            raise RuntimeError(f"the echo server exited with {process.wait()} before its port line")
        yield f"127.0.0.1:{line[1]}"
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _stub_request(images: np.ndarray, target_class: np.ndarray) -> Any:
    """The PredictRequest ServingClient.explain sends, as a ``tensorflow_serving.apis`` message."""
    from tensorflow_serving.apis import predict_pb2

    from serving_client._codec import encode
    from serving_client.contract import IMAGES, TARGET_CLASS

    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL_NAME
    request.model_spec.signature_name = "explain"
    for alias, value in ((IMAGES, images), (TARGET_CLASS, target_class)):
        request.inputs[alias].ParseFromString(encode(value).SerializeToString())
    return request


class RestExplainer:
    """Explain over TF Serving's REST API on one keep-alive HTTP/1.1 connection."""

    def __init__(self, port: int, model_name: str, timeout: float = 30.0) -> None:
        self._connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self._path = f"/v1/models/{model_name}:predict"

    def explain(self, images: np.ndarray) -> list[dict[str, Any]]:
        """One request; every image with ``target_class`` -1 (REST needs defaulted inputs too).

        Raises:
            RuntimeError: The server answered with a status other than 200.
        """
        body = json.dumps(
            {
                "signature_name": "explain",
                "instances": [{"images": image.tolist(), "target_class": -1} for image in images],
            }
        )
        self._connection.request(
            "POST", self._path, body=body, headers={"Content-Type": "application/json"}
        )
        response = self._connection.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(f"REST explain answered HTTP {response.status}: {payload[:300]!r}")
        return json.loads(payload)["predictions"]

    def close(self) -> None:
        """Closes the connection."""
        self._connection.close()


def run(export_dir: Path, base_path: Path, workdir: Path) -> dict[str, Any]:
    """Starts the server on `base_path`, times inproc / grpc / rest at every batch in `BATCHES`.

    Args:
        export_dir: The SavedModel version the server will serve (loaded here for ``inproc``).
        base_path: The model's base path (``--model_base_path``).
        workdir: Where the server log goes.

    Returns:
        ``{"batches": {batch: {variant: Timing dict, "grpc_adds_ms": d, "rest_over_grpc": r,
        ...}}, "load_average": [1, 5, 15 min]}`` (``grpc_adds_ms``: gRPC p50 minus in-process
        p50, the target; ``grpc_adds_over_server_run_ms``: gRPC p50 minus the server's own
        session call in this process; ``transport_floor_ms``: the echo's p50).
    """
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from exporter import Tf1SavedModel
    from model_server._servable import load_saved_model
    from serving_client import ServingClient
    from serving_client.contract import IMAGES, TARGET_CLASS

    results: dict[str, Any] = {"batches": {}}
    echo_dir = workdir / "echo_responses"
    echo_dir.mkdir(parents=True, exist_ok=True)
    with (
        contextlib.closing(load_saved_model(MODEL_NAME, 1, export_dir)) as servable,
        Tf1SavedModel(export_dir) as loaded,
        ServerProcess(MODEL_NAME, base_path, log_path=workdir / "server.log", poll_seconds=0) as server,
        ServingClient(server.grpc_target, MODEL_NAME, timeout=30.0) as client,
    ):
        assert server.rest_port is not None  # ServerProcess.start() guarantees it
        explain = servable.signature_defs["explain"]
        fetches = [explain.outputs[alias].name for alias in sorted(explain.outputs)]
        rest = RestExplainer(server.rest_port, MODEL_NAME)
        channel = grpc.insecure_channel(server.grpc_target)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        requests = {}
        for batch in BATCHES:
            images = random_images(batch, seed=1000 + batch)
            requests[batch] = _stub_request(images, np.full((batch,), -1, np.int32))
            answer = stub.Predict(requests[batch], timeout=30.0)
            (echo_dir / f"{batch}.pb").write_bytes(answer.SerializeToString())
        try:
            with echo_server(echo_dir) as echo_target, grpc.insecure_channel(echo_target) as echo:
                echo_stub = prediction_service_pb2_grpc.PredictionServiceStub(echo)
                for batch, (repetitions, warmup) in BATCHES.items():
                    images = random_images(batch, seed=1000 + batch)
                    # What the server feeds for the client's request: images and -1 per image.
                    feeds = {
                        explain.inputs[IMAGES].name: images,
                        explain.inputs[TARGET_CLASS].name: np.full((batch,), -1, np.int32),
                    }
                    request = requests[batch]
                    timings = interleaved(
                        {
                            "inproc": functools.partial(loaded.run, "explain", {"images": images}),
                            "inproc_server_run": functools.partial(servable.run, fetches, feeds),
                            "rest": functools.partial(rest.explain, images),
                            "grpc_floor": client.status,
                            "echo_floor": functools.partial(echo_stub.Predict, request, timeout=30.0),
                            "grpc_stub": functools.partial(stub.Predict, request, timeout=30.0),
                            "grpc": functools.partial(client.explain, images),
                        },
                        repetitions,
                        warmup,
                    )
                    p50 = {name: t.p50_ms for name, t in timings.items()}
                    results["batches"][batch] = {
                        **{name: t.as_dict() for name, t in timings.items()},
                        "grpc_adds_ms": p50["grpc"] - p50["inproc"],
                        "grpc_adds_p99_ms": timings["grpc"].p99_ms - timings["inproc"].p99_ms,
                        "grpc_stub_adds_ms": p50["grpc_stub"] - p50["inproc"],
                        "grpc_adds_over_server_run_ms": p50["grpc"] - p50["inproc_server_run"],
                        "transport_floor_ms": p50["echo_floor"],
                        "rest_over_grpc": p50["rest"] / p50["grpc"],
                    }
        finally:
            rest.close()
            channel.close()
    results["load_average"] = list(os.getloadavg())
    return results
