"""A light gRPC client for saliency-serving models on TF Serving; it never imports TensorFlow.

>>> with ServingClient("localhost:8500", "mnist") as client:  # doctest: +SKIP
...     explanation = client.explain(images)

``images`` is what the export's ``images`` input takes, read once from the model's metadata:
float32 arrays, uint8 pixel arrays (0..255), or for ``image_bytes`` exports file paths, encoded
bytes, PIL images or pixel arrays (:data:`INPUT_FORMATS`, :func:`as_image_batch`). Response
tensors are decoded within :class:`DecodeLimits` tied to ``max_message_bytes``.
"""

from ._client import DEFAULT_MAX_MESSAGE_BYTES, ServingClient, signature_for
from ._codec import DecodeLimits
from ._codec import decode as decode_tensor
from ._codec import encode as encode_tensor
from ._exceptions import (
    ClientClosedError,
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidArgumentError,
    MalformedTensorError,
    NotFoundError,
    ResourceExhaustedError,
    ServerError,
    ServingError,
    TensorTooLargeError,
    UnavailableError,
    UnexpectedResponseError,
)
from ._inputs import INPUT_FORMATS, as_image_batch
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
    "INPUT_FORMATS",
    "METHODS",
    "ClientClosedError",
    "DeadlineExceededError",
    "DecodeLimits",
    "Explanation",
    "FailedPreconditionError",
    "InvalidArgumentError",
    "MalformedTensorError",
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
    "TensorTooLargeError",
    "UnavailableError",
    "UnexpectedResponseError",
    "as_image_batch",
    "decode_tensor",
    "encode_tensor",
    "signature_for",
]
