"""The serving contract, TensorFlow-free: the names TF Serving clients depend on.

One home for the signature names, input and output aliases, the TensorFlow ``DataType``
numbers, the input formats and the version-directory layout.
The exporter, the bundled server and the client all import these names from here; change
nothing lightly, since deployed clients depend on them.

Explanation signatures are named by one rule: the ``vanilla`` method is ``explain``, every other
method ``<name>`` is ``explain_<name>``. Which methods an export has is read from its signatures
(:func:`method_of_signature`), never from a hand-kept list.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from pathlib import PurePosixPath

__all__ = [
    "APPROXIMATION_ERROR",
    "ASSETS_EXTRA",
    "ATTRIBUTIONS",
    "BASELINE",
    "DataType",
    "EXPLAIN",
    "EXPLAIN_OUTPUTS",
    "FLOAT32",
    "IG_OUTPUTS",
    "IMAGES",
    "IMAGE_BYTES",
    "INPUT_FORMATS",
    "INPUT_FORMAT_DTYPES",
    "LOGITS",
    "NOISE",
    "PREDICTED_CLASS",
    "PREDICT_OUTPUTS",
    "PROBABILITIES",
    "REPORT_ASSET",
    "REQUEST_INPUTS",
    "SAMPLES",
    "SALIENCY",
    "SERVING_DEFAULT",
    "STEPS",
    "TARGET_CLASS",
    "TARGET_CLASS_DEFAULT",
    "UINT8",
    "VANILLA",
    "WARMUP_ASSET",
    "input_format_of_dtype",
    "method_of_signature",
    "methods_of_signatures",
    "signature_name",
]

SERVING_DEFAULT = "serving_default"
#: The default explanation method; its signature is plain ``explain``.
VANILLA = "vanilla"
EXPLAIN = "explain"
_EXPLAIN_PREFIX = EXPLAIN + "_"

IMAGES = "images"
TARGET_CLASS = "target_class"
#: Recorded in the SignatureDef's `defaults`: −1 asks for the predicted class.
TARGET_CLASS_DEFAULT = -1

# Optional per-request parameters of the methods that declare them (each a per-image vector,
# so TF Serving's batching can concatenate requests; a length-1 value broadcasts). Their
# defaults (the export's configured values) are in the SignatureDef's `defaults`.
#: int32 [batch]: the path's intervals (IG family).
STEPS = "steps"
#: int32 [batch]: noisy copies averaged (SmoothGrad, and SmoothGrad inside IG).
SAMPLES = "samples"
#: float32 [batch]: the noise σ as a fraction of the input range.
NOISE = "noise"
#: float32 [batch, N, H, W, C]: N baselines per image (model input space) whose
#: attributions are averaged; N = 0 means the export's constant baseline.
BASELINE = "baseline"
#: Every per-request parameter alias, in the order signatures list them.
REQUEST_INPUTS = (STEPS, SAMPLES, NOISE, BASELINE)

LOGITS = "logits"
PROBABILITIES = "probabilities"
PREDICTED_CLASS = "predicted_class"
SALIENCY = "saliency"
#: Path methods only: signed (x − baseline) × mean path gradient, [B,H,W,C].
ATTRIBUTIONS = "attributions"
#: Path methods only: |Σ attributions − Δlogit| / |Δlogit| per example, [B].
APPROXIMATION_ERROR = "approximation_error"

PREDICT_OUTPUTS = (LOGITS, PROBABILITIES, PREDICTED_CLASS)
EXPLAIN_OUTPUTS = (*PREDICT_OUTPUTS, TARGET_CLASS, SALIENCY)
IG_OUTPUTS = (*EXPLAIN_OUTPUTS, ATTRIBUTIONS, APPROXIMATION_ERROR)


class DataType(enum.IntEnum):
    """TensorFlow's ``DataType`` numbers (``types.proto``) the contract and the codec name.

    The numbers are the wire format's, so they never change; a test pins them against
    TensorFlow's own enum.
    """

    DT_INVALID = 0
    DT_FLOAT = 1
    DT_DOUBLE = 2
    DT_INT32 = 3
    DT_UINT8 = 4
    DT_INT16 = 5
    DT_INT8 = 6
    DT_STRING = 7
    DT_COMPLEX64 = 8
    DT_INT64 = 9
    DT_BOOL = 10
    DT_QINT8 = 11
    DT_QUINT8 = 12
    DT_QINT32 = 13
    DT_BFLOAT16 = 14
    DT_QINT16 = 15
    DT_QUINT16 = 16
    DT_UINT16 = 17
    DT_COMPLEX128 = 18
    DT_HALF = 19
    DT_RESOURCE = 20
    DT_VARIANT = 21
    DT_UINT32 = 22
    DT_UINT64 = 23


#: Input formats of the ``images`` input (``input.format`` in the export config).
FLOAT32 = "float32"
UINT8 = "uint8"
IMAGE_BYTES = "image_bytes"
INPUT_FORMATS: tuple[str, ...] = (FLOAT32, UINT8, IMAGE_BYTES)
#: The ``images`` input's dtype in every signature, by input format.
INPUT_FORMAT_DTYPES: dict[str, DataType] = {
    FLOAT32: DataType.DT_FLOAT,
    UINT8: DataType.DT_UINT8,
    IMAGE_BYTES: DataType.DT_STRING,
}
_FORMAT_OF_DTYPE = {int(dtype): name for name, dtype in INPUT_FORMAT_DTYPES.items()}

#: The version directory's extra assets, beside ``saved_model.pb`` and ``variables/``.
ASSETS_EXTRA = PurePosixPath("assets.extra")
#: Where every version directory keeps its export report (relative to the version).
REPORT_ASSET = ASSETS_EXTRA / "export_report.json"
#: TF Serving's warmup file (a TFRecord of PredictionLogs), relative to the version.
WARMUP_ASSET = ASSETS_EXTRA / "tf_serving_warmup_requests"


def input_format_of_dtype(dtype: int) -> str | None:
    """The input format whose ``images`` input has DataType ``dtype``, or ``None`` if none has."""
    return _FORMAT_OF_DTYPE.get(int(dtype))


def signature_name(method: str) -> str:
    """The signature that serves explanation ``method``: ``explain`` or ``explain_<method>``."""
    if not method.isidentifier() or method != method.lower():
        raise ValueError(
            f"An explanation method name is a lower-case identifier; received {method!r}."
        )
    return EXPLAIN if method == VANILLA else _EXPLAIN_PREFIX + method


def method_of_signature(signature: str) -> str | None:
    """The explanation method a signature serves, or ``None`` when it is not an explanation."""
    if signature == EXPLAIN:
        return VANILLA
    if signature.startswith(_EXPLAIN_PREFIX) and len(signature) > len(_EXPLAIN_PREFIX):
        return signature[len(_EXPLAIN_PREFIX) :]
    return None


def methods_of_signatures(signatures: Iterable[str]) -> dict[str, str]:
    """The explanation methods an export serves, method → signature, in signature order.

    A method exists exactly when its signature does: this is how the client (and anything
    else) learns an export's methods from its metadata instead of from a hand-kept list.
    """
    methods: dict[str, str] = {}
    for signature in signatures:
        method = method_of_signature(signature)
        if method is not None:
            methods[method] = signature
    return methods
