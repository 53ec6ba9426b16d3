"""Issue 4: every exported explanation method, per image at batch 32, against `serving_default`.

All signatures run through the same `Tf1SavedModel` (a TF1 session, TF Serving's path) on the
same 32 random images, interleaved call by call, so the ratios come from one run.
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path
from typing import Any

from tests.benchmarks._fixture import MODEL_NAME, random_images
from tests.benchmarks._timing import interleaved

__all__ = ["BATCH", "SIGNATURES", "export_all_methods", "run"]

BATCH = 32
REPETITIONS, WARMUP = 10, 2

#: The exporter's method names → their signatures (as `serving_client.METHODS`).
SIGNATURES = {
    "vanilla": "explain",
    "smoothgrad": "explain_smoothgrad",
    "integrated_gradients": "explain_integrated_gradients",
    "gradient_x_input": "explain_gradient_x_input",
    "gradcam": "explain_gradcam",
}


def export_all_methods(model: Any, workdir: Path) -> tuple[Path, Any]:
    """Exports `model` with every method the exporter offers, as `workdir/models/mnist_methods/1`.

    Returns:
        (version directory, the `MethodsConfig` used: samples, noise, steps, baseline).
    """
    from exporter import ExportConfig, VerificationConfig, export_model
    from exporter._config import MethodsConfig
    from exporter.methods import names

    base = workdir / "models" / f"{MODEL_NAME}_methods"
    if base.exists():
        shutil.rmtree(base)
    methods = MethodsConfig(enabled=names())
    config = ExportConfig(
        name=f"{MODEL_NAME}_methods",
        methods=methods,
        warmup_batch_sizes=(1,),
        verification=VerificationConfig(fd_epsilon=1e-3),
    )
    path = export_model(model, base, version=1, config=config, samples=random_images(4, seed=123))
    return path, methods


def run(loaded: Any, methods: tuple[str, ...]) -> dict[str, Any]:
    """Times `serving_default` and each method's signature at batch `BATCH`.

    Args:
        loaded: The all-methods export, open as `exporter.Tf1SavedModel`.
        methods: The exported methods (keys of `SIGNATURES`).

    Returns:
        ``{"batch": 32, "predict": Timing dict, "methods": {method: {"signature", "timing",
        "ms_per_image", "over_predict"}}}``.
    """
    images = random_images(BATCH, seed=BATCH)
    calls = {"predict": functools.partial(loaded.run, "serving_default", {"images": images})}
    for method in methods:
        calls[method] = functools.partial(loaded.run, SIGNATURES[method], {"images": images})
    timings = interleaved(calls, REPETITIONS, WARMUP)
    predict = timings["predict"].p50_ms
    return {
        "batch": BATCH,
        "predict": {**timings["predict"].as_dict(), "ms_per_image": predict / BATCH},
        "methods": {
            method: {
                "signature": SIGNATURES[method],
                **timings[method].as_dict(),
                "ms_per_image": timings[method].p50_ms / BATCH,
                "over_predict": timings[method].p50_ms / predict,
            }
            for method in methods
        },
    }
