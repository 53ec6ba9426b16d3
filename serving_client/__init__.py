"""A light gRPC client for saliency-serving models on TF Serving; it never imports TensorFlow.

>>> with ServingClient("localhost:8500", "mnist") as client:  # doctest: +SKIP
...     explanation = client.explain(images)

``images`` is what the export's ``images`` input takes, read once from the model's metadata:
float32 arrays, uint8 pixel arrays (0..255), or for ``image_bytes`` exports file paths, encoded
bytes, PIL images or pixel arrays (:data:`INPUT_FORMATS`, :func:`as_image_batch`). Response
tensors are decoded within :class:`DecodeLimits` tied to ``max_message_bytes``.

An export's methods are read from its signatures (:meth:`ServingClient.methods`), by the
naming rule of :mod:`serving_client.contract`; an export's report is read with
:func:`read_report` (:mod:`serving_client.report`).
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
    Explanation,
    ModelMetadata,
    ModelVersionStatus,
    Prediction,
    SignatureInfo,
    TensorSpec,
)
from .report import ExportReport, ReportError, read_report

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "INPUT_FORMATS",
    "ClientClosedError",
    "DeadlineExceededError",
    "DecodeLimits",
    "Explanation",
    "ExportReport",
    "FailedPreconditionError",
    "InvalidArgumentError",
    "MalformedTensorError",
    "ModelMetadata",
    "ModelVersionStatus",
    "NotFoundError",
    "Prediction",
    "ReportError",
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
    "read_report",
    "signature_for",
]
