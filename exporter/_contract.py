"""The signature contract: names that TF Serving clients depend on. Change nothing lightly."""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "APPROXIMATION_ERROR",
    "REPORT_ASSET",
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
    "PREDICT_OUTPUTS",
    "SERVING_DEFAULT",
    "TARGET_CLASS",
    "TARGET_CLASS_DEFAULT",
]

SERVING_DEFAULT = "serving_default"
EXPLAIN = "explain"
EXPLAIN_SMOOTHGRAD = "explain_smoothgrad"
EXPLAIN_INTEGRATED_GRADIENTS = "explain_integrated_gradients"
EXPLAIN_GRADIENT_X_INPUT = "explain_gradient_x_input"
EXPLAIN_GRADCAM = "explain_gradcam"
#: Export method name (config `[methods] enabled`, CLI `--methods`) → signature name.
EXPLAIN_SIGNATURES = {
    "vanilla": EXPLAIN,
    "smoothgrad": EXPLAIN_SMOOTHGRAD,
    "integrated_gradients": EXPLAIN_INTEGRATED_GRADIENTS,
    "gradient_x_input": EXPLAIN_GRADIENT_X_INPUT,
    "gradcam": EXPLAIN_GRADCAM,
}

IMAGES = "images"
TARGET_CLASS = "target_class"
#: Recorded in the SignatureDef's `defaults`: −1 asks for the predicted class.
TARGET_CLASS_DEFAULT = -1

LOGITS = "logits"
PROBABILITIES = "probabilities"
PREDICTED_CLASS = "predicted_class"
SALIENCY = "saliency"
#: Integrated Gradients only: signed (x − baseline) × mean path gradient, [B,H,W,C].
ATTRIBUTIONS = "attributions"
#: Integrated Gradients only: |Σ attributions − Δlogit| / |Δlogit| per example, [B].
APPROXIMATION_ERROR = "approximation_error"

PREDICT_OUTPUTS = (LOGITS, PROBABILITIES, PREDICTED_CLASS)
EXPLAIN_OUTPUTS = (*PREDICT_OUTPUTS, TARGET_CLASS, SALIENCY)
IG_OUTPUTS = (*EXPLAIN_OUTPUTS, ATTRIBUTIONS, APPROXIMATION_ERROR)

#: Where every version directory keeps its export report (relative to the version).
REPORT_ASSET = Path("assets.extra") / "export_report.json"
