"""Issue 4: our in-graph signatures against tf-keras-vis and Xplique at batch 32.

Same model, images, target classes and parameters for everyone:

- the competitors get the exporter's own logits copy of the model (`LogitsCopy`: the softmax
  removed, as both libraries recommend and as our signatures differentiate);
- the target is each image's predicted class;
- SmoothGrad: the export's n samples and σ (a fraction of the input range [0, 1], which for
  tf-keras-vis' per-image relative `smooth_noise` and Xplique's absolute `noise` is the same
  number on images spanning [0, 1)); IG: the export's m intervals = m + 1 points
  (Xplique's `steps` counts points and also uses the trapezoidal rule), baseline 0.

The libraries are optional (`make bench` installs them with --no-deps, outside the runtime
dependencies). One that does not import or fails on its first call is reported as skipped
with the reason, and the rest still runs. Ours is timed through `Tf1SavedModel`, the
competitors as their users call them (explainer built once, then one call per batch).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from tests.benchmarks._fixture import random_images
from tests.benchmarks._timing import interleaved
from tests.benchmarks.bench_methods import BATCH, SIGNATURES

__all__ = ["TARGET_SPEEDUP", "run"]

TARGET_SPEEDUP = 2.0
REPETITIONS, WARMUP = 5, 1


def _tf_keras_vis(logits_model: Any, images: np.ndarray, targets: np.ndarray, methods: Any) -> dict[str, Callable[[], object]]:
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.saliency import Saliency
    from tf_keras_vis.utils.scores import CategoricalScore

    # clone=False and no model_modifier: tf-keras-vis 0.8.7's ReplaceToLinear reads
    # `model.output_names`, which Keras 3 models no longer have; the model is already logits.
    saliency = Saliency(logits_model, model_modifier=None, clone=False)
    gradcam = Gradcam(logits_model, model_modifier=None, clone=False)
    score = CategoricalScore(targets.tolist())
    return {
        "vanilla": functools.partial(saliency, score, images),
        "smoothgrad": functools.partial(
            saliency, score, images,
            smooth_samples=methods.params_of("smoothgrad").samples, smooth_noise=methods.params_of("smoothgrad").noise,
        ),
        "gradcam": functools.partial(gradcam, score, images),
    }  # fmt: skip


def _xplique(logits_model: Any, images: np.ndarray, targets: np.ndarray, methods: Any) -> dict[str, Callable[[], object]]:
    import tensorflow as tf
    from xplique.attributions import GradientInput, IntegratedGradients, Saliency, SmoothGrad

    labels = tf.one_hot(targets, int(logits_model.output_shape[-1]))
    low, high = methods.params_of("smoothgrad").input_range
    explainers = {
        "vanilla": Saliency(logits_model, batch_size=BATCH),
        "smoothgrad": SmoothGrad(
            logits_model, batch_size=BATCH, nb_samples=methods.params_of("smoothgrad").samples,
            noise=methods.params_of("smoothgrad").noise * (high - low),
        ),
        "integrated_gradients": IntegratedGradients(
            logits_model, batch_size=BATCH, steps=methods.params_of("integrated_gradients").steps + 1,
            baseline_value=methods.params_of("integrated_gradients").baseline,
        ),
        "gradient_x_input": GradientInput(logits_model, batch_size=BATCH),
    }  # fmt: skip
    return {name: functools.partial(e.explain, images, labels) for name, e in explainers.items()}


LIBRARIES = {"tf-keras-vis": _tf_keras_vis, "xplique": _xplique}


def run(
    model: Any,
    loaded: Any,
    methods_config: Any,
    images: np.ndarray | None = None,
    repetitions: int = REPETITIONS,
) -> dict[str, Any]:
    """Times ours and each competitor per method at batch `BATCH`, interleaved per method.

    Args:
        model: The Keras model that was exported.
        loaded: Its all-methods export, open as `exporter.Tf1SavedModel`.
        methods_config: The export's `MethodsConfig` (parameters given to the competitors).
        images: The batch to explain; `BATCH` random MNIST-shaped images by default.
        repetitions: Timed calls per variant and method.

    Returns:
        ``{"batch", "libraries": {name: "ok" | reason}, "methods": {method: {"ours": ms/image,
        competitor: ms/image, ..., "fastest", "speedup"}}}``.
    """
    from exporter._reference import LogitsCopy

    images = random_images(BATCH, seed=BATCH) if images is None else images
    results_batch = int(images.shape[0])
    logits_model = LogitsCopy.of(model).model
    targets = np.asarray(loaded.run("serving_default", {"images": images})["predicted_class"])
    libraries: dict[str, str] = {}
    competitor_calls: dict[str, dict[str, Callable[[], object]]] = {}
    for library, build in LIBRARIES.items():
        try:
            calls = build(logits_model, images, targets, methods_config)
        except Exception as error:  # noqa: BLE001 - any import/setup failure means "skip it"
            libraries[library] = f"skipped: {type(error).__name__}: {error}"
            continue
        libraries[library] = "ok"
        for method, call in calls.items():
            try:
                call()  # first call: traces, and shows whether it runs at all here
            except Exception as error:  # noqa: BLE001
                libraries[f"{library}/{method}"] = f"skipped: {type(error).__name__}: {error}"
                continue
            competitor_calls.setdefault(method, {})[library] = call

    exported = [m for m in SIGNATURES if m in methods_config.enabled]
    results: dict[str, Any] = {"batch": results_batch, "libraries": libraries, "methods": {}}
    for method in exported:
        calls = {"ours": functools.partial(loaded.run, SIGNATURES[method], {"images": images})}
        calls.update(competitor_calls.get(method, {}))
        if len(calls) == 1:
            continue
        timings = interleaved(calls, repetitions, WARMUP)
        per_image = {name: t.p50_ms / results_batch for name, t in timings.items()}
        fastest = min((name for name in per_image if name != "ours"), key=per_image.__getitem__)
        results["methods"][method] = {
            **per_image,
            "fastest": fastest,
            "speedup": per_image[fastest] / per_image["ours"],
            "timings": {name: t.as_dict() for name, t in timings.items()},
        }
    return results
