"""gRPC front end on the official ``tensorflow_serving.apis`` servicer base classes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent import futures
from typing import Any, NoReturn

import grpc
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from ._core import ServingCore
from ._errors import ServingError

log = logging.getLogger("model_server")

# Requests and responses are tensorflow_serving messages, which have no stubs: Any here.


def _answer(context: grpc.ServicerContext, call: Callable[[Any], Any], request: Any) -> Any:
    try:
        return call(request)
    except ServingError as exc:
        context.abort(exc.code, exc.message)
    except Exception as exc:  # a bug must cost one request, never the server
        log.exception("internal error while serving a request")
        context.abort(grpc.StatusCode.INTERNAL, f"internal server error: {exc}")


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict and GetModelMetadata; Classify/Regress/MultiInference are UNIMPLEMENTED."""

    def __init__(self, core: ServingCore) -> None:
        self._core = core

    def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 - gRPC method name
        return _answer(context, self._core.predict, request)

    def GetModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return _answer(context, self._core.get_model_metadata, request)

    def Classify(self, request: Any, context: grpc.ServicerContext) -> NoReturn:  # noqa: N802
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "Classify is not implemented by this server; use Predict")

    def Regress(self, request: Any, context: grpc.ServicerContext) -> NoReturn:  # noqa: N802
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "Regress is not implemented by this server; use Predict")

    def MultiInference(self, request: Any, context: grpc.ServicerContext) -> NoReturn:  # noqa: N802
        context.abort(
            grpc.StatusCode.UNIMPLEMENTED, "MultiInference is not implemented by this server; use Predict"
        )


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus; HandleReloadConfigRequest is UNIMPLEMENTED."""

    def __init__(self, core: ServingCore) -> None:
        self._core = core

    def GetModelStatus(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return _answer(context, self._core.get_model_status, request)

    def HandleReloadConfigRequest(self, request: Any, context: grpc.ServicerContext) -> NoReturn:  # noqa: N802
        context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "HandleReloadConfigRequest is not implemented by this server; restart it with the new config",
        )


def new_grpc_server(*, max_workers: int, max_message_bytes: int) -> grpc.Server:
    """An empty grpc.Server with the bundled server's settings (the benchmark's echo uses it).

    A thread-pool server: a `grpc.aio` server (session run inline or in an executor), the
    ``poll`` polling strategy and 2 instead of 16 workers were measured against it at batch 1
    and none was faster beyond noise (docs/benchmarks.md, "Server overhead").
    """
    return grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc-worker"),
        options=[
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
            # Refuse a second server on the same port instead of silently sharing it.
            ("grpc.so_reuseport", 0),
        ],
    )


def build_grpc_server(
    core: ServingCore, *, max_workers: int, max_message_bytes: int
) -> grpc.Server:
    """A grpc.Server with both services registered and generous message limits."""
    server = new_grpc_server(max_workers=max_workers, max_message_bytes=max_message_bytes)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(core), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(core), server)
    return server
