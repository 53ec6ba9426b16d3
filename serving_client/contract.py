"""The serving contract, TensorFlow-free: the names TF Serving clients depend on.

One home for the signature names, input and output aliases and the version-directory layout.
The exporter, the bundled server and the client all import these names from here; change
nothing lightly, since deployed clients depend on them.

Explanation signatures are named by one rule: the ``vanilla`` method is ``explain``, every other
method ``<name>`` is ``explain_<name>``. Which methods an export has is read from its signatures
(:func:`method_of_signature`), never from a hand-kept list.
"""

from __future__ import annotations

from pathlib import PurePosixPath

__all__ = [
    "APPROXIMATION_ERROR",
    "ATTRIBUTIONS",
    "EXPLAIN",
    "EXPLAIN_OUTPUTS",
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
    "VANILLA",
    "method_of_signature",
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

#: Where every version directory keeps its export report (relative to the version).
REPORT_ASSET = PurePosixPath("assets.extra") / "export_report.json"


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
