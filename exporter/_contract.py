"""The signature contract: names that TF Serving clients depend on. Change nothing lightly."""

from __future__ import annotations

__all__ = [
    "EXPLAIN",
    "EXPLAIN_OUTPUTS",
    "IMAGES",
    "PREDICT_OUTPUTS",
    "SERVING_DEFAULT",
    "TARGET_CLASS",
    "TARGET_CLASS_DEFAULT",
]

SERVING_DEFAULT = "serving_default"
EXPLAIN = "explain"

IMAGES = "images"
TARGET_CLASS = "target_class"
#: Recorded in the SignatureDef's `defaults`: −1 asks for the predicted class.
TARGET_CLASS_DEFAULT = -1

LOGITS = "logits"
PROBABILITIES = "probabilities"
PREDICTED_CLASS = "predicted_class"
SALIENCY = "saliency"

PREDICT_OUTPUTS = (LOGITS, PROBABILITIES, PREDICTED_CLASS)
EXPLAIN_OUTPUTS = (*PREDICT_OUTPUTS, TARGET_CLASS, SALIENCY)
