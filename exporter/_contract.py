"""The exporter's view of the serving contract; the names live in :mod:`serving_client.contract`."""

from __future__ import annotations

from serving_client.contract import (
    APPROXIMATION_ERROR,
    ATTRIBUTIONS,
    EXPLAIN,
    EXPLAIN_OUTPUTS,
    IG_OUTPUTS,
    IMAGES,
    LOGITS,
    PREDICT_OUTPUTS,
    PREDICTED_CLASS,
    PROBABILITIES,
    REPORT_ASSET,
    SALIENCY,
    SERVING_DEFAULT,
    TARGET_CLASS,
    TARGET_CLASS_DEFAULT,
    signature_name,
)

__all__ = [
    "APPROXIMATION_ERROR",
    "ATTRIBUTIONS",
    "EXPLAIN",
    "EXPLAIN_GRADCAM",
    "EXPLAIN_GRADIENT_X_INPUT",
    "EXPLAIN_INTEGRATED_GRADIENTS",
    "EXPLAIN_OUTPUTS",
    "EXPLAIN_SIGNATURES",
    "EXPLAIN_SMOOTHGRAD",
    "IG_OUTPUTS",
    "IMAGES",
    "LOGITS",
    "PREDICTED_CLASS",
    "PREDICT_OUTPUTS",
    "PROBABILITIES",
    "REPORT_ASSET",
    "SALIENCY",
    "SERVING_DEFAULT",
    "TARGET_CLASS",
    "TARGET_CLASS_DEFAULT",
]

EXPLAIN_SMOOTHGRAD = signature_name("smoothgrad")
EXPLAIN_INTEGRATED_GRADIENTS = signature_name("integrated_gradients")
EXPLAIN_GRADIENT_X_INPUT = signature_name("gradient_x_input")
EXPLAIN_GRADCAM = signature_name("gradcam")
#: Export method name (config `[methods] enabled`, CLI `--methods`) → signature name.
EXPLAIN_SIGNATURES = {
    m: signature_name(m)
    for m in ("vanilla", "smoothgrad", "integrated_gradients", "gradient_x_input", "gradcam")
}
