"""A light gRPC client for saliency-serving models on TF Serving; it never imports TensorFlow.

>>> with ServingClient("localhost:8500", "mnist") as client:  # doctest: +SKIP
...     explanation = client.explain(images)
"""

from ._client import DEFAULT_MAX_MESSAGE_BYTES, ServingClient, signature_for
from ._codec import decode as decode_tensor
from ._codec import encode as encode_tensor
from ._exceptions import (
    ClientClosedError,
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
    ServerError,
    ServingError,
    UnavailableError,
    UnexpectedResponseError,
)
from ._results import (
    METHODS,
    Explanation,
    ModelMetadata,
    ModelVersionStatus,
    Prediction,
    SignatureInfo,
    TensorSpec,
)

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "METHODS",
    "ClientClosedError",
    "DeadlineExceededError",
    "Explanation",
    "FailedPreconditionError",
    "InvalidArgumentError",
    "ModelMetadata",
    "ModelVersionStatus",
    "NotFoundError",
    "Prediction",
    "ResourceExhaustedError",
    "ServerError",
    "ServingClient",
    "ServingError",
    "SignatureInfo",
    "TensorSpec",
    "UnavailableError",
    "UnexpectedResponseError",
    "decode_tensor",
    "encode_tensor",
    "signature_for",
]
