"""Where saliency maps come from: the export's signatures, the same math on another
Keras model (the randomized copy), or a plugged-in function.

A method is evaluated as a `MapFunction(model, images, target) → maps [B,H,W]`; the
built-in ones call the exporter's own signature builder, so a randomized copy is
explained with exactly the attribution math that is served.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from exporter._config import MethodsConfig, methods_from_record
from exporter._logits import find_logits
from exporter._signatures import build_signatures
from serving_client import contract as c

__all__ = ["MapFunction", "SignatureMaps", "methods_config_from_report", "normalized"]

#: (model, images [B,H,W,C], target class int32 [B]) → maps [B,H,W].
MapFunction = Callable[[keras.Model, np.ndarray, np.ndarray], np.ndarray]


def methods_config_from_report(report: Mapping[str, Any]) -> MethodsConfig:
    """The `MethodsConfig` an export was built with, from its `export_report.json`.

    Exports made before the methods existed record none: they have `explain` only.
    """
    return methods_from_record(report.get("export", {}).get("methods"))


class SignatureMaps:
    """The exported attribution math applied to any Keras model with the same input.

    Signatures are built once per model object; they read its variables, so a model
    whose weights are re-assigned in place needs no rebuild.

    Args:
        input_shape: (H, W, C).
        reduction: Channel reduction, as exported.
        methods: Methods and parameters, as exported.
        logits_layer: The logits layer override, as exported (None: detected).
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        reduction: str,
        methods: MethodsConfig,
        logits_layer: str | None = None,
    ) -> None:
        height, width, channels = input_shape  # a list from a JSON report is fine too
        self.input_shape = (height, width, channels)
        self.reduction = reduction
        self.methods = methods
        self.logits_layer = logits_layer
        self._built: dict[int, tuple[keras.Model, dict[str, Any]]] = {}

    def _signatures(self, model: keras.Model) -> dict[str, Any]:
        entry = self._built.get(id(model))
        if entry is None or entry[0] is not model:
            head = find_logits(model, self.logits_layer)
            entry = (model, build_signatures(head, self.input_shape, self.reduction, self.methods))
            self._built[id(model)] = entry
        return entry[1]

    def function(self, signature: str) -> MapFunction:
        """A `MapFunction` computing `signature`'s `saliency` output in-process."""

        def maps(model: keras.Model, images: np.ndarray, target: np.ndarray) -> np.ndarray:
            fn = self._signatures(model)[signature]
            out = fn(tf.constant(images, tf.float32), tf.constant(target, tf.int32))
            return out[c.SALIENCY].numpy()

        return maps


def normalized(function: MapFunction) -> MapFunction:
    """Wraps a plugged-in map function so its maps are min-max normalized like the
    signatures' ([0, 1] per example; a constant map becomes zeros)."""

    def maps(model: keras.Model, images: np.ndarray, target: np.ndarray) -> np.ndarray:
        out = np.asarray(function(model, images, target), np.float64)
        if out.shape != images.shape[:3]:
            raise ValueError(f"A map function must return [B,H,W] = {list(images.shape[:3])}; received {list(out.shape)}.")
        low = out.min(axis=(1, 2), keepdims=True)
        span = out.max(axis=(1, 2), keepdims=True) - low
        return np.where(span > 0, (out - low) / np.where(span > 0, span, 1.0), 0.0).astype(np.float32)

    return maps
