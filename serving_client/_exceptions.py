"""One exception hierarchy for the client; ``grpc.RpcError`` is translated in :func:`from_rpc_error`."""

from __future__ import annotations

import grpc


class ServingError(Exception):
    """Base class of every error the client raises about a call to the server.

    Attributes:
        code: the gRPC status code name, e.g. ``"INVALID_ARGUMENT"``; client-side errors use
            their own names (``"CLIENT_CLOSED"``, ``"UNEXPECTED_RESPONSE"``).
        details: the server's message (or the client's, for client-side errors).
    """

    def __init__(self, code: str, details: str) -> None:
        super().__init__(f"{code}: {details}")
        self.code = code
        self.details = details


class InvalidArgumentError(ServingError):
    """The server rejected the request: wrong input name, dtype, shape or target class."""


class NotFoundError(ServingError):
    """The model, version or version label does not exist on the server."""


class FailedPreconditionError(ServingError):
    """The request cannot run as asked: TF Serving's code for an unknown signature name."""


class UnavailableError(ServingError):
    """The server could not be reached (retried with backoff until the deadline)."""


class DeadlineExceededError(ServingError):
    """The call did not finish within the client's timeout."""


class ResourceExhaustedError(ServingError):
    """A message exceeded a size limit or the server ran out of a resource."""


class ServerError(ServingError):
    """Any other gRPC failure (INTERNAL, UNKNOWN, UNIMPLEMENTED, ...)."""


class UnexpectedResponseError(ServingError):
    """The server answered, but without the outputs the signature contract promises."""

    def __init__(self, details: str) -> None:
        super().__init__("UNEXPECTED_RESPONSE", details)


class MalformedTensorError(UnexpectedResponseError, ValueError):
    """A tensor of the response cannot be decoded: its content does not fit its shape.

    Also a ``ValueError``, which :func:`serving_client.decode_tensor` raised before.
    """


class TensorTooLargeError(MalformedTensorError):
    """A tensor of the response declares more than the client decodes (its limits)."""


class ClientClosedError(ServingError):
    """The client was used after ``close()`` (or after its ``with`` block ended)."""

    def __init__(self, details: str = "This ServingClient is closed; create a new one.") -> None:
        super().__init__("CLIENT_CLOSED", details)


_BY_CODE: dict[grpc.StatusCode, type[ServingError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
}


def from_rpc_error(error: grpc.RpcError) -> ServingError:
    """Translate a ``grpc.RpcError`` into the matching :class:`ServingError` subclass."""
    code = error.code() if isinstance(error, grpc.Call) else None
    details = (error.details() if isinstance(error, grpc.Call) else None) or str(error)
    if code is None:
        return ServerError("UNKNOWN", details)
    return _BY_CODE.get(code, ServerError)(code.name, details)
