"""The transport floor: a gRPC Predict servicer that answers canned responses, no model.

``python -m tests.benchmarks._echo_server DIR`` serves PredictionService on a free port of
127.0.0.1 with the bundled server's gRPC settings (`model_server._grpc_service`) and prints
``PORT n``; ``Predict`` answers ``DIR/<batch>.pb``, a serialized PredictResponse picked by the
batch size of the request's first input (`bench_serving` writes the real server's explain
answers there). Its round trip is what the gRPC Python transport and the official stubs cost
with a response of the real size, and nothing else; it stops on SIGTERM.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any

import grpc
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from model_server._grpc_service import new_grpc_server

__all__ = ["EchoServicer", "main"]


class EchoServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict answers the canned response for the request's batch size."""

    def __init__(self, responses: dict[int, Any]) -> None:
        self._responses = responses

    def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 - gRPC name
        first = next(iter(request.inputs.values()), None)
        batch = first.tensor_shape.dim[0].size if first is not None and first.tensor_shape.dim else -1
        response = self._responses.get(batch)
        if response is None:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"no canned response for batch {batch}; have {sorted(self._responses)}",
            )
        return response


def main(argv: list[str]) -> int:
    """Serves until SIGTERM. Returns the exit code (2: bad arguments)."""
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("usage: python -m tests.benchmarks._echo_server DIR (of <batch>.pb)", file=sys.stderr)
        return 2
    responses = {
        int(path.stem): predict_pb2.PredictResponse.FromString(path.read_bytes())
        for path in Path(argv[0]).glob("*.pb")
    }
    server = new_grpc_server(max_workers=16, max_message_bytes=64 << 20)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(EchoServicer(responses), server)
    port = server.add_insecure_port("127.0.0.1:0")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    print(f"PORT {port}", flush=True)
    stop.wait()
    server.stop(1).wait(2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
