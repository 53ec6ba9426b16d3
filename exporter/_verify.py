"""Verification of a written export before it is published.

Checks, through the TF1 session loader:
1. the signatures carry the contract's names, dtypes and the `target_class` default;
2. `logits`/`probabilities` match the Keras model on sample inputs;
3. `saliency` matches an independent eager `GradientTape` reference, for the predicted
   class (omitted `target_class`) and for an explicit other class;
4. the reference gradient matches central finite differences of the *exported* logits
   at the positions with the largest gradient.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np

from exporter import _contract as c
from exporter._config import VerificationConfig
from exporter._errors import VerificationError
from exporter._reference import LogitsCopy, reference_explain
from exporter._tf1 import Tf1SavedModel

__all__ = ["check_contract", "verify_export"]

_DT_FLOAT, _DT_INT32 = 1, 3
_EXPECTED = {
    c.SERVING_DEFAULT: (
        {c.IMAGES: _DT_FLOAT},
        {c.LOGITS: _DT_FLOAT, c.PROBABILITIES: _DT_FLOAT, c.PREDICTED_CLASS: _DT_INT32},
    ),
    c.EXPLAIN: (
        {c.IMAGES: _DT_FLOAT, c.TARGET_CLASS: _DT_INT32},
        {
            c.LOGITS: _DT_FLOAT,
            c.PROBABILITIES: _DT_FLOAT,
            c.PREDICTED_CLASS: _DT_INT32,
            c.TARGET_CLASS: _DT_INT32,
            c.SALIENCY: _DT_FLOAT,
        },
    ),
}


def check_contract(signature_defs: dict[str, Any]) -> None:
    """Raises VerificationError unless the SignatureDefs follow the documented contract."""
    for name, (inputs, outputs) in _EXPECTED.items():
        if name not in signature_defs:
            raise VerificationError(
                f"Signature {name!r} is missing; found {sorted(signature_defs)}."
            )
        sig = signature_defs[name]
        for kind, expected, actual in (("input", inputs, sig.inputs), ("output", outputs, sig.outputs)):
            got = {alias: info.dtype for alias, info in actual.items()}
            if got != expected:
                raise VerificationError(
                    f"Signature {name!r} {kind}s: expected {expected} (alias → DataType); received {got}."
                )
    defaults = signature_defs[c.EXPLAIN].defaults
    if c.TARGET_CLASS not in defaults:
        raise VerificationError("Signature 'explain' does not record a default for target_class.")


def _max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)))) if a.size else 0.0


def _expected_probabilities(
    model: keras.Model, images: np.ndarray, copy: LogitsCopy, model_outputs_probabilities: bool
) -> np.ndarray:
    if not model_outputs_probabilities:
        # The model outputs logits (or the user named them): probabilities are their softmax.
        logits = copy.logits(images).astype(np.float64)
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True)
    out = np.asarray(model(images, training=False), np.float64)
    return np.concatenate([1.0 - out, out], axis=-1) if copy.binary else out


def _finite_differences(
    saved: Tf1SavedModel, image: np.ndarray, target: int, gradient: np.ndarray, cfg: VerificationConfig
) -> dict[str, float]:
    """Central differences of the exported logit at the positions of largest |gradient|.

    ReLU and max-pool networks are piecewise linear: a step that crosses a kink measures
    the neighbouring linear piece, not the gradient. Each position is therefore tried at
    steps eps, eps/10 and eps/100 and the closest estimate kept; a wrong gradient is wrong
    at every step size.
    """
    flat = np.abs(gradient).ravel()
    count = min(cfg.fd_positions, flat.size)
    positions = np.argsort(flat)[::-1][:count]
    steps = np.array([cfg.fd_epsilon, cfg.fd_epsilon / 10, cfg.fd_epsilon / 100])
    batch = np.repeat(image[None], 2 * count * len(steps), axis=0)
    row = 0
    for pos in positions:
        index = np.unravel_index(pos, image.shape)
        for eps in steps:
            batch[(row, *index)] += eps
            batch[(row + 1, *index)] -= eps
            row += 2
    logits = saved.run(c.SERVING_DEFAULT, {c.IMAGES: batch}, (c.LOGITS,))[c.LOGITS].astype(np.float64)
    numeric = (logits[0::2, target] - logits[1::2, target]).reshape(count, len(steps)) / (2 * steps)
    analytic = gradient.ravel()[positions].astype(np.float64)
    scale = max(float(np.max(np.abs(gradient))), 1e-12)
    per_position = np.min(np.abs(numeric - analytic[:, None]), axis=1) / scale
    return {
        "positions": int(count),
        "epsilons": steps.tolist(),
        "max_error_relative_to_max_gradient": float(per_position.max()),
    }


def verify_export(
    export_dir: Path,
    model: keras.Model,
    *,
    reduction: str,
    config: VerificationConfig,
    input_shape: tuple[int, int, int],
    logits_layer: str | None = None,
    model_outputs_probabilities: bool = True,
    samples: np.ndarray | None = None,
) -> dict[str, Any]:
    """Verifies the SavedModel at `export_dir` against `model`.

    Args:
        export_dir: The (unpublished) export.
        model: The user's Keras model.
        reduction: The saliency reduction the export was built with.
        config: Tolerances and sample settings.
        input_shape: (H, W, C).
        logits_layer: The logits override, if any, for the reference.
        model_outputs_probabilities: Compare `probabilities` with the model's output
            (else with the softmax of the reference logits).
        samples: Optional sample inputs [N,H,W,C]; random uniform in
            `config.sample_range` otherwise.

    Returns:
        The verification figures (for the report).

    Raises:
        VerificationError: If any check fails; the message gives the figure and the tolerance.
    """
    if samples is None:
        rng = np.random.default_rng(config.seed)
        low, high = config.sample_range
        samples = rng.uniform(low, high, (config.num_samples, *input_shape)).astype(np.float32)
    samples = np.asarray(samples, np.float32)

    copy = LogitsCopy.of(model, logits_layer)
    reference = reference_explain(copy, samples, None, reduction)
    num_classes = reference["logits"].shape[-1]
    other = ((reference["predicted_class"] + 1) % num_classes).astype(np.int32)
    reference_other = reference_explain(copy, samples, other, reduction)

    figures: dict[str, Any] = {"samples": int(samples.shape[0])}
    with Tf1SavedModel(export_dir) as saved:
        check_contract(saved.signature_defs)
        predict = saved.run(c.SERVING_DEFAULT, {c.IMAGES: samples})
        explain = saved.run(c.EXPLAIN, {c.IMAGES: samples})
        explain_other = saved.run(c.EXPLAIN, {c.IMAGES: samples, c.TARGET_CLASS: other})

        checks = [
            ("logits", _max_abs_diff(predict[c.LOGITS], reference["logits"]), config.logits_atol),
            (
                "probabilities",
                _max_abs_diff(predict[c.PROBABILITIES], _expected_probabilities(model, samples, copy, model_outputs_probabilities)),
                config.probabilities_atol,
            ),
            ("explain_logits", _max_abs_diff(explain[c.LOGITS], predict[c.LOGITS]), config.logits_atol),
            ("saliency_predicted_class", _max_abs_diff(explain[c.SALIENCY], reference["saliency"]), config.saliency_atol),
            ("saliency_other_class", _max_abs_diff(explain_other[c.SALIENCY], reference_other["saliency"]), config.saliency_atol),
        ]
        for name, value, tolerance in checks:
            figures[f"{name}_max_abs_diff"] = value
            figures[f"{name}_tolerance"] = tolerance
            if not value <= tolerance:
                raise VerificationError(
                    f"Export does not match the reference: max |{name} difference| = {value:.3g} "
                    f"exceeds the tolerance {tolerance:.3g} (TF1 loader vs eager Keras model)."
                )
        if not np.array_equal(explain[c.TARGET_CLASS], reference["predicted_class"]):
            raise VerificationError(
                "explain without target_class must explain the predicted class: expected "
                f"{reference['predicted_class'].tolist()}, received {explain[c.TARGET_CLASS].tolist()}."
            )
        if not np.array_equal(explain_other[c.TARGET_CLASS], other):
            raise VerificationError(
                f"explain ignored target_class: expected {other.tolist()}, received "
                f"{explain_other[c.TARGET_CLASS].tolist()}."
            )
        fd = _finite_differences(
            saved, samples[0], int(reference["target_class"][0]), reference["gradient"][0], config
        )
    figures["finite_differences"] = fd
    figures["finite_differences_tolerance"] = config.fd_rtol
    if not fd["max_error_relative_to_max_gradient"] <= config.fd_rtol:
        raise VerificationError(
            "The gradient does not match central finite differences of the exported logits: "
            f"max error {fd['max_error_relative_to_max_gradient']:.3g} of the largest gradient "
            f"exceeds {config.fd_rtol:.3g} (steps {fd['epsilons']})."
        )
    return figures
