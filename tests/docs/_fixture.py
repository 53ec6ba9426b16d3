"""The files the docs' commands use, made once per docs check: ``python -m tests.docs._fixture DIR``.

DIR gets ``model.keras`` (a small MNIST-shaped CNN, 28×28×1 → 10 classes, random weights: the
commands check plumbing, not accuracy), ``digit.png`` and ``digits.npy`` (synthetic strokes on
a dim noisy background, float32 [8, 28, 28, 1] in [0, 1]). The export of ``model.keras`` the bundled server serves is
written by the project's own CLI (see ``test_docs_commands.py``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHAPE = (28, 28, 1)


def digits(count: int = 8):
    """Bright strokes on a dim noisy background, one per image, at seeded random places.

    The background is not exactly 0: with the random model's zero biases, an all-zero patch
    puts ReLUs exactly at their kink, where the finite-difference check of the export cannot
    agree with any gradient.
    """
    import numpy as np

    rng = np.random.default_rng(0)
    images = rng.uniform(0.0, 0.1, size=(count, *SHAPE)).astype(np.float32)
    for k in range(count):
        row, col = rng.integers(4, 18, size=2)
        images[k, row : row + 8, col : col + 3, 0] = 1.0
        images[k, row : row + 3, col : col + 8, 0] = 0.8
    return images


def write(directory: Path) -> None:
    import keras
    import numpy as np
    from PIL import Image

    directory.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(1234)
    inputs = keras.Input(SHAPE, name="images")
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.Flatten()(keras.layers.MaxPooling2D(2)(x))
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
    model.save(directory / "model.keras")
    images = digits()
    np.save(directory / "digits.npy", images)
    Image.fromarray((images[0, :, :, 0] * 255).astype(np.uint8), mode="L").save(
        directory / "digit.png"
    )


if __name__ == "__main__":
    write(Path(sys.argv[1]))
