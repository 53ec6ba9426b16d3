"""Issue "exporter": the in-graph `explain` signature against `serving_default` and hand-written eager code.

Everything runs in this process, on the same inputs, interleaved call by call:

- ``predict``: `serving_default` through `Tf1SavedModel` (a TF1 session, TF Serving's path);
- ``explain``: the `explain` signature the same way (target -1: the predicted class);
- ``eager``: the seed-style recipe on the same Keras model — GradientTape over the
  **probability** output (the classic recipe; the exported signature differentiates the logits),
  `np.max(np.abs(grads), axis=-1)` and a min-max normalization in numpy.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from tests.benchmarks._fixture import random_images
from tests.benchmarks._timing import Timing, interleaved

__all__ = ["BATCHES", "eager_saliency", "run"]

# batch → (timed repetitions, warmup calls) per variant.
BATCHES: dict[int, tuple[int, int]] = {1: (60, 5), 32: (30, 3), 256: (10, 2)}


def eager_saliency(model: Any, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The typical hand-written eager saliency, as found in tutorials.

    Args:
        model: Keras classifier with a softmax output.
        images: float32 [B, H, W, C].

    Returns:
        (probabilities [B, K], saliency [B, H, W] min-max normalized per image).
    """
    import tensorflow as tf

    x = tf.convert_to_tensor(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        preds = model(x)
        top = tf.argmax(preds, axis=1)
        loss = tf.gather(preds, top, axis=1, batch_dims=1)
    grads = tape.gradient(loss, x).numpy()
    saliency = np.max(np.abs(grads), axis=-1)
    low = saliency.min(axis=(1, 2), keepdims=True)
    high = saliency.max(axis=(1, 2), keepdims=True)
    return preds.numpy(), (saliency - low) / (high - low + 1e-12)


def _check_same_model(loaded: Any, model: Any, images: np.ndarray) -> None:
    # The three variants must answer for the same weights, or the ratios mean nothing.
    explained = loaded.run("explain", {"images": images})
    probabilities, saliency = eager_saliency(model, images)
    if not np.array_equal(explained["predicted_class"], probabilities.argmax(axis=1)):
        raise RuntimeError(
            "The exported explain signature and the Keras model disagree on the predicted class; "
            "the benchmark would compare different models."
        )
    if explained["saliency"].shape != saliency.shape:
        raise RuntimeError(
            f"Saliency shapes differ: explain {explained['saliency'].shape}, eager {saliency.shape}."
        )


def run(model: Any, export_dir: Path) -> dict[str, Any]:
    """Times predict / explain / eager at every batch size in `BATCHES`.

    Args:
        model: The Keras model that was exported.
        export_dir: Its SavedModel version directory.

    Returns:
        ``{"batches": {batch: {variant: Timing dict, ...}, "explain_over_predict": r,
        "eager_over_explain": r}}``.
    """
    from exporter import Tf1SavedModel

    results: dict[str, Any] = {"eager_differentiates": "probabilities", "batches": {}}
    with Tf1SavedModel(export_dir) as loaded:
        _check_same_model(loaded, model, random_images(4, seed=7))
        for batch, (repetitions, warmup) in BATCHES.items():
            images = random_images(batch, seed=batch)
            timings: dict[str, Timing] = interleaved(
                {
                    "predict": functools.partial(loaded.run, "serving_default", {"images": images}),
                    "explain": functools.partial(loaded.run, "explain", {"images": images}),
                    "eager": functools.partial(eager_saliency, model, images),
                },
                repetitions,
                warmup,
            )
            predict, explain, eager = (timings[k].p50_ms for k in ("predict", "explain", "eager"))
            results["batches"][batch] = {
                **{name: t.as_dict() for name, t in timings.items()},
                "explain_over_predict": explain / predict,
                "eager_over_explain": eager / explain,
            }
    return results
