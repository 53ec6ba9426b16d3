"""`evaluate_export`: the randomization test and deletion/insertion for every method of
an export, and `run_gate`, the same checks as a pass/fail step of the export."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from exporter import methods as _methods
from exporter._config import EvaluationConfig, MethodsConfig
from exporter._errors import ConfigError, EvaluationError
from exporter._loading import load_keras_model
from exporter._logits import find_logits
from exporter._tf1 import Tf1SavedModel
from exporter.evaluation._data import load_images, prepare_images
from exporter.evaluation._deletion_insertion import (
    auc,
    perturbation_curves,
    random_order,
    saliency_order,
)
from exporter.evaluation._maps import (
    MapFunction,
    SignatureMaps,
    methods_config_from_report,
    normalized,
)
from exporter.evaluation._randomization import randomization_test
from exporter.evaluation._report import EvaluationReport, MethodEvaluation, PerturbationScores
from serving_client import contract as c
from serving_client.report import ExportReport, ReportError, read_report

__all__ = ["evaluate_export", "evaluate_saved_model", "evaluated_methods", "run_gate"]

logger = logging.getLogger("exporter.evaluation")



def evaluated_methods() -> dict[str, str]:
    """Methods the evaluation can recompute for a randomized model → their signature.

    The registered methods whose `evaluated` is true, in registry order.
    """
    return {m.name: m.signature for m in _methods.registry() if m.evaluated}


REPORT_ASSET = c.REPORT_ASSET
# The Keras model must be the exported one: logits may differ by float noise only.
_MATCH_RTOL = 1e-3


def _scores(deletion: np.ndarray, insertion: np.ndarray) -> PerturbationScores:
    return PerturbationScores(
        deletion_auc=float(auc(deletion).mean()),
        insertion_auc=float(auc(insertion).mean()),
        deletion_curve=tuple(float(v) for v in deletion.mean(axis=0)),
        insertion_curve=tuple(float(v) for v in insertion.mean(axis=0)),
    )


def _select_methods(
    signature_defs: Mapping[str, Any], methods: Sequence[str] | None
) -> tuple[dict[str, str], dict[str, str]]:
    """(method → signature to evaluate, signature → why it is skipped)."""
    evaluated = evaluated_methods()
    exported = {m: s for m, s in evaluated.items() if s in signature_defs}
    skipped = {
        name: "the evaluation cannot recompute this method for a randomized model yet"
        for name in signature_defs
        if c.method_of_signature(name) is not None and name not in evaluated.values()
    }
    if methods is None:
        return exported, skipped
    chosen: dict[str, str] = {}
    for method in methods:
        if method not in evaluated:
            raise ConfigError(
                f"Unknown method {method!r} to evaluate; expected some of {', '.join(evaluated)}."
            )
        if method not in exported:
            raise ConfigError(
                f"Method {method!r} is not in this export (signature {evaluated[method]!r} "
                f"missing); exported: {', '.join(exported)}."
            )
        chosen[method] = exported[method]
    return chosen, skipped


def evaluate_saved_model(
    export_dir: str | Path,
    model: keras.Model,
    images: np.ndarray,
    *,
    input_shape: tuple[int, int, int],
    reduction: str,
    methods_config: MethodsConfig,
    logits_layer: str | None = None,
    methods: Sequence[str] | None = None,
    custom_methods: Mapping[str, MapFunction] | None = None,
    config: EvaluationConfig | None = None,
) -> EvaluationReport:
    """Evaluates a SavedModel whose export parameters are given explicitly.

    `evaluate_export` reads those parameters from the export's report; the export gate
    calls this directly on the staging directory. See `evaluate_export` for the rest.
    """
    config = config or EvaluationConfig()
    images = prepare_images(images, input_shape, config.num_images)
    export_dir = Path(export_dir)
    custom_methods = dict(custom_methods or {})
    signature_maps = SignatureMaps(
        input_shape,
        reduction,
        # Only the methods this module can recompute (e.g. not Grad-CAM yet).
        dataclasses.replace(
            methods_config, enabled=tuple(m for m in methods_config.enabled if _methods.get(m).evaluated)
        ),
        logits_layer,
    )
    with Tf1SavedModel(export_dir) as saved:
        chosen, skipped = _select_methods(saved.signature_defs, methods)
        clash = sorted(set(chosen) & set(custom_methods))
        if clash:
            raise ConfigError(f"Custom method name {clash[0]!r} is taken by a built-in method; rename it.")

        def predict(x: np.ndarray) -> np.ndarray:
            return saved.run(c.SERVING_DEFAULT, {c.IMAGES: x}, (c.PROBABILITIES,))[c.PROBABILITIES]

        served = saved.run(c.SERVING_DEFAULT, {c.IMAGES: images}, (c.LOGITS, c.PREDICTED_CLASS))
        target = served[c.PREDICTED_CLASS].astype(np.int32)
        _check_model_matches(model, logits_layer, images, served[c.LOGITS])

        functions: dict[str, MapFunction] = {}
        originals: dict[str, np.ndarray] = {}
        for method, signature in chosen.items():
            logger.info("Maps of %s (%s) for %d images", method, signature, len(images))
            originals[method] = saved.run(signature, {c.IMAGES: images, c.TARGET_CLASS: target}, (c.SALIENCY,))[c.SALIENCY]
            functions[method] = signature_maps.function(signature)
        for method, function in custom_methods.items():
            functions[method] = normalized(function)
            originals[method] = functions[method](model, images, target)

        logger.info("Randomization cascade (%d methods)", len(functions))
        cascade = randomization_test(model, images, target, originals, functions, seed=config.seed)

        logger.info("Deletion/insertion in %d steps", config.steps)
        pixels = images.shape[1] * images.shape[2]

        def curves(order: np.ndarray) -> PerturbationScores:
            deletion, insertion = perturbation_curves(
                predict, images, target, order, steps=config.steps, blur_sigma=config.blur_sigma
            )
            return _scores(deletion, insertion)

        random_scores = curves(random_order(len(images), pixels, config.seed))
        evaluations = []
        for method in functions:
            scores = curves(saliency_order(originals[method], config.seed))
            evaluations.append(
                _judge(method, chosen.get(method, "custom"), tuple(cascade[method]), scores, random_scores, originals[method][0], config)
            )
    return EvaluationReport(
        export_dir=str(export_dir),
        num_images=len(images),
        settings={
            "steps": config.steps,
            "max_randomization_spearman": config.max_randomization_spearman,
            "min_deletion_gain_over_random": config.min_deletion_gain_over_random,
            "deletion_baseline": 0.0,
            "blur_sigma": config.blur_sigma,
            "seed": config.seed,
            "target": "the export's predicted class for each image",
        },
        methods=tuple(evaluations),
        random=random_scores,
        skipped=skipped,
        example_image=images[0],
    )


def _judge(
    method: str,
    source: str,
    randomization: tuple,
    scores: PerturbationScores,
    random_scores: PerturbationScores,
    example_map: np.ndarray,
    config: EvaluationConfig,
) -> MethodEvaluation:
    failures = []
    final = randomization[-1].spearman if randomization else float("nan")
    if not final <= config.max_randomization_spearman:
        failures.append(
            f"randomization test failed: with every layer re-initialized its maps still have a mean "
            f"Spearman correlation of {final:.3f} with the trained model's (allowed <= "
            f"{config.max_randomization_spearman}); the maps barely depend on the weights"
        )
    deletion_gain = random_scores.deletion_auc - scores.deletion_auc
    if not deletion_gain > config.min_deletion_gain_over_random:
        failures.append(
            f"deletion no better than random: AUC {scores.deletion_auc:.3f} in saliency order vs "
            f"{random_scores.deletion_auc:.3f} in random order (gain {deletion_gain:+.3f}, required > "
            f"{config.min_deletion_gain_over_random})"
        )
    return MethodEvaluation(
        method=method,
        source=source,
        randomization=randomization,
        scores=scores,
        deletion_gain_over_random=deletion_gain,
        insertion_gain_over_random=scores.insertion_auc - random_scores.insertion_auc,
        failures=tuple(failures),
        example_map=example_map,
    )


def _check_model_matches(model: keras.Model, logits_layer: str | None, images: np.ndarray, served_logits: np.ndarray) -> None:
    import tensorflow as tf

    logits = find_logits(model, logits_layer).logits_fn(tf.constant(images[:8])).numpy()
    difference = float(np.abs(logits - served_logits[:8]).max())
    if difference > _MATCH_RTOL * max(1.0, float(np.abs(served_logits[:8]).max())):
        raise ConfigError(
            f"The Keras model is not the one this export was made from: its logits differ from "
            f"the export's by up to {difference:.3g}. Pass the exported model (--model PATH)."
        )


def _read_export_report(export_dir: Path) -> ExportReport:
    try:
        return read_report(export_dir)
    except ReportError as error:
        raise ConfigError(str(error)) from None


def evaluate_export(
    export_dir: str | Path,
    images: np.ndarray | str | Path,
    *,
    model: keras.Model | str | Path | None = None,
    methods: Sequence[str] | None = None,
    custom_methods: Mapping[str, MapFunction] | None = None,
    config: EvaluationConfig | None = None,
    safe_mode: bool = True,
) -> EvaluationReport:
    """Sanity checks and faithfulness scores of every explanation method of an export.

    The maps of the trained model come from the export's own signatures (through the
    TF1 session loader, TF Serving's path); the randomized copies are explained with
    the exporter's signature code on a clone of `model`. Deletion/insertion track the
    export's `serving_default` probability of each image's predicted class. The
    export is only read.

    Args:
        export_dir: A version directory (`BASE/<version>`) written by the exporter.
        images: [N,H,W,C] images, or a `.npy` path.
        model: The Keras model that was exported, or its file; by default the
            `model.source` recorded in the export report.
        methods: Built-in methods to evaluate (default: every exported one).
        custom_methods: name → `MapFunction(model, images, target) → [B,H,W]`, evaluated
            the same way (e.g. a model-independent baseline).
        config: Steps, thresholds, number of images, seed (`EvaluationConfig`).
        safe_mode: Keras safe mode when loading the model from a file.

    Returns:
        The `EvaluationReport` (check `.passed`; failing checks do not raise).

    Raises:
        ConfigError: Not an export directory, no model, a model that is not the
            exported one, images of the wrong shape, an unknown method.
        ModelLoadError: The model file cannot be loaded.
    """
    export_dir = Path(export_dir)
    report = _read_export_report(export_dir)
    if model is None:
        source = report.model.source
        if not source:
            raise ConfigError(
                f"The export report of {export_dir} records no model file; pass the Keras model (--model PATH)."
            )
        model = source
    if isinstance(model, str | Path):
        model = load_keras_model(model, safe_mode=safe_mode)
    if isinstance(images, str | Path):
        images = load_images(images)
    logits_info = report.model.logits
    height, width, channels = report.model.input_shape
    return evaluate_saved_model(
        export_dir,
        model,
        images,
        input_shape=(height, width, channels),
        reduction=report.export.reduction,
        methods_config=methods_config_from_report(report.raw),
        logits_layer=logits_info.layer if logits_info.kind == "named_layer" else None,
        methods=methods,
        custom_methods=custom_methods,
        config=config,
    )


def run_gate(
    export_dir: Path,
    model: keras.Model,
    samples: np.ndarray | None,
    *,
    input_shape: tuple[int, int, int],
    reduction: str,
    methods_config: MethodsConfig,
    logits_layer: str | None,
    config: EvaluationConfig,
) -> dict[str, Any]:
    """The export gate: evaluates the staged export and raises unless every method passes.

    Images: `config.data` when set, else the verification `samples`.

    Returns:
        The evaluation report as a dict, for the export report.

    Raises:
        ConfigError: No evaluation images.
        EvaluationError: A method failed; the message lists every failure.
    """
    if config.data is not None:
        images = load_images(config.data)
    elif samples is not None:
        images = samples
    else:
        raise ConfigError(
            "[evaluation] is enabled but there are no evaluation images: set [evaluation] data = "
            "a .npy file of held-out images, or pass samples= to the export."
        )
    report = evaluate_saved_model(
        export_dir,
        model,
        images,
        input_shape=input_shape,
        reduction=reduction,
        methods_config=methods_config,
        logits_layer=logits_layer,
        config=config,
    )
    for line in report.summary().splitlines():
        logger.info("%s", line)
    if not report.passed:
        raise EvaluationError(
            "The explanations failed the evaluation gate; nothing was published.\n  "
            + "\n  ".join(report.failures)
            + "\nSee the README, 'Trustworthy explanations'; thresholds are in [evaluation]."
        )
    return report.to_dict()
