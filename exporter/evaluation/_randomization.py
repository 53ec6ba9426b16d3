"""Model-parameter randomization test (Adebayo et al. 2018, "Sanity Checks for Saliency
Maps"), cascading from the top layer down.

Step k re-initializes the weights of the k top-most layers that have weights, on a
copy of the model, and compares each method's maps for the copy with the original
maps. A method whose maps do not change when the weights they claim to explain are
destroyed is not explaining the model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping

import keras
import numpy as np

from exporter.evaluation._maps import MapFunction
from exporter.evaluation._metrics import spearman_abs, ssim

__all__ = ["CascadeStep", "cascade", "randomization_test", "weighted_layers"]


@dataclasses.dataclass(frozen=True)
class CascadeStep:
    """Similarity of the original and randomized maps after one cascade step.

    Attributes:
        layer: The layer re-initialized at this step (all layers above it already are).
        spearman: Mean over images of the Spearman correlation of |maps|.
        ssim: Mean over images of the SSIM of the maps.
        example: The first image's randomized map [H, W] (for the figure).
    """

    layer: str
    spearman: float
    ssim: float
    example: np.ndarray


def weighted_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Layers that own weights, from the output down (the cascade order)."""
    return [layer for layer in reversed(model.layers) if layer.weights]


def _copy(model: keras.Model) -> keras.Model:
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def _reinitialize(layer: keras.layers.Layer, seed: int) -> None:
    """Draws the layer's weights afresh from its own initializers (as at construction).

    A weight without a matching `<name>_initializer` attribute is shuffled instead,
    which keeps its value distribution but destroys what was learned.
    """
    rng = np.random.default_rng(seed)
    for i, weight in enumerate(layer.weights):
        name = weight.path.rsplit("/", 1)[-1]
        initializer = getattr(layer, f"{name}_initializer", None)
        if initializer is not None:
            config = keras.initializers.serialize(initializer)
            if isinstance(config, dict) and "config" in config and "seed" in config["config"]:
                config["config"]["seed"] = seed * 1000 + i
            values = keras.initializers.get(config)(tuple(weight.shape), dtype=weight.dtype)
            weight.assign(values)
        else:
            current = np.asarray(weight.numpy())
            weight.assign(rng.permutation(current.ravel()).reshape(current.shape))


def cascade(model: keras.Model, seed: int = 0) -> Iterator[tuple[str, keras.Model]]:
    """Yields (layer name, copy) with one more top layer re-initialized each time.

    The same copy is modified in place and yielded at every step; `model` is never
    touched.
    """
    copy = _copy(model)
    for step, layer in enumerate(weighted_layers(copy)):
        _reinitialize(layer, seed + step)
        yield layer.name, copy


def randomization_test(
    model: keras.Model,
    images: np.ndarray,
    target: np.ndarray,
    original_maps: Mapping[str, np.ndarray],
    functions: Mapping[str, MapFunction],
    *,
    seed: int = 0,
) -> dict[str, list[CascadeStep]]:
    """Runs the cascade and compares every method's maps at every step.

    Args:
        model: The Keras model that was exported (left untouched).
        images: [B,H,W,C].
        target: int32 [B], the class explained (the original model's prediction).
        original_maps: method → the original maps [B,H,W].
        functions: method → how to compute its maps for a randomized copy.
        seed: Seed of the re-initialization.

    Returns:
        method → one `CascadeStep` per layer with weights, top layer first.
    """
    results: dict[str, list[CascadeStep]] = {name: [] for name in functions}
    for layer_name, copy in cascade(model, seed):
        for name, function in functions.items():
            randomized = np.asarray(function(copy, images, target))
            original = original_maps[name]
            results[name].append(
                CascadeStep(
                    layer=layer_name,
                    spearman=float(np.mean([spearman_abs(o, r) for o, r in zip(original, randomized, strict=True)])),
                    ssim=float(np.mean([ssim(o, r) for o, r in zip(original, randomized, strict=True)])),
                    example=randomized[0],
                )
            )
    return results
