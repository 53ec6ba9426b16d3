"""The exporter's view of the serving contract; the names live in :mod:`serving_client.contract`.

Which explanation signatures exist is not listed here: each is `signature_name(method)` of a
method in `exporter.methods.registry()`.
"""

from __future__ import annotations

from serving_client.contract import (
    APPROXIMATION_ERROR,
    ATTRIBUTIONS,
    EXPLAIN,
    EXPLAIN_OUTPUTS,
    FLOAT32,
    IG_OUTPUTS,
    IMAGE_BYTES,
    IMAGES,
    INPUT_FORMAT_DTYPES,
    INPUT_FORMATS,
    LOGITS,
    PREDICT_OUTPUTS,
    PREDICTED_CLASS,
    PROBABILITIES,
    REPORT_ASSET,
    SALIENCY,
    SERVING_DEFAULT,
    TARGET_CLASS,
    TARGET_CLASS_DEFAULT,
    UINT8,
    VANILLA,
    WARMUP_ASSET,
    DataType,
    method_of_signature,
    signature_name,
)

__all__ = [
    "APPROXIMATION_ERROR",
    "ATTRIBUTIONS",
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
    "PREDICTED_CLASS",
    "PREDICT_OUTPUTS",
    "PROBABILITIES",
    "REPORT_ASSET",
    "SALIENCY",
    "SERVING_DEFAULT",
    "TARGET_CLASS",
    "TARGET_CLASS_DEFAULT",
    "UINT8",
    "VANILLA",
    "WARMUP_ASSET",
    "method_of_signature",
    "signature_name",
]
