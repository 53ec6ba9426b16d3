"""The model under test: the demo MNIST CNN (untrained weights suffice for timing), exported once."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["MODEL_NAME", "build_model", "export", "random_images"]

MODEL_NAME = "mnist"
IMAGE_SHAPE = (28, 28, 1)


def build_model(seed: int = 0) -> Any:
    """The classic Keras MNIST convnet (softmax output), with seeded random weights.

    The MNIST example's demo model, `examples.mnist.model.build_mnist_cnn`.
    """
    import keras

    from examples.mnist.model import build_mnist_cnn

    keras.utils.set_random_seed(seed)
    return build_mnist_cnn()


def random_images(batch: int, seed: int = 0) -> np.ndarray:
    """float32 [batch, 28, 28, 1] uniform in [0, 1)."""
    return np.random.default_rng(seed).random((batch, *IMAGE_SHAPE), dtype=np.float32)


def export(model: Any, workdir: Path) -> Path:
    """Exports `model` as version 1 under `workdir/models/mnist` (replacing an earlier run's).

    Returns:
        The version directory.
    """
    from exporter import ExportConfig, VerificationConfig, export_model

    base = workdir / "models" / MODEL_NAME
    if base.exists():
        shutil.rmtree(base)
    # Random weights put many ReLUs near their kink, where the default 1e-2 finite-difference
    # step crosses it (seen: 0.057 > 0.05); a 1e-3 step keeps the check meaningful.
    config = ExportConfig(name=MODEL_NAME, verification=VerificationConfig(fd_epsilon=1e-3))
    return export_model(model, base, version=1, config=config, samples=random_images(4, seed=123))
