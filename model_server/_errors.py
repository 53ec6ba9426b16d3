"""One error type for every request failure, carrying TF Serving's status code and message."""

from __future__ import annotations

import grpc

# TF Serving's http_server.cc ToHTTPStatusCode(), code for code.
_HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}

# tensorflow.error.Code numbers are the gRPC status numbers.
_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


class ServingError(Exception):
    """A request failed with a TF Serving status code and message.

    Args:
        code: the gRPC status code TF Serving would answer with.
        message: the status message, worded as TF Serving words it where it has one.
    """

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        """The HTTP status TF Serving's REST API maps this code to."""
        return _HTTP_STATUS.get(self.code, 500)

    @property
    def code_name(self) -> str:
        """The canonical code name, e.g. ``INVALID_ARGUMENT``."""
        return self.code.name

    def __repr__(self) -> str:
        return f"ServingError({self.code.name}, {self.message!r})"


def code_from_number(number: int) -> grpc.StatusCode:
    """Map a ``tensorflow.error.Code`` number (as on ``tf.errors.OpError``) to a gRPC code."""
    return _BY_NUMBER.get(number, grpc.StatusCode.UNKNOWN)


def invalid_argument(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.NOT_FOUND, message)


def failed_precondition(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.FAILED_PRECONDITION, message)
