"""An independent eager reference for verification and tests.

Deliberately shares no code with the signature path: it clones the model with its final
softmax/sigmoid replaced by a linear activation (a "logits copy"), takes an eager
`tf.GradientTape` gradient, and reduces/normalizes in numpy. Each method's own reference
(`Method.reference` in `exporter.methods`) is built on this copy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

__all__ = [
    "EagerReference",
    "FunctionReference",
    "LogitsCopy",
    "numpy_saliency",
    "reference_explain",
]


class _PassThrough(keras.layers.Layer):
    """Stands in for a removed softmax; accepts the same call arguments (e.g. `mask`)."""

    def call(self, inputs: Any, mask: Any = None) -> Any:  # noqa: ARG002 - signature mirrors Softmax
        return inputs


def _is_float_dtype(value: object) -> bool:
    if isinstance(value, dict):  # a serialized DTypePolicy
        value = value.get("config", {}).get("name")
    return isinstance(value, str) and ("float" in value or value.startswith("mixed"))


def _float64_config(config: object) -> object:
    """A layer config with every float dtype, nested layers' included, set to float64.

    Nested models (e.g. ConvNeXt's Sequential stem) carry their inner layers' configs;
    changing only the outer dtype would leave those computing in float32.
    """
    if isinstance(config, dict):
        out = {key: _float64_config(value) for key, value in config.items()}
        if "dtype" in out and _is_float_dtype(config["dtype"]):
            out["dtype"] = "float64"
        return out
    if isinstance(config, list):
        return [_float64_config(item) for item in config]
    return config


def _final_layer_name(model: keras.Model) -> str:
    return model.outputs[0]._keras_history.operation.name


@dataclasses.dataclass(frozen=True)
class LogitsCopy:
    """A clone of the model that outputs logits; the original is untouched.

    Attributes:
        model: The clone, outputs [B,K] logits (or [B,1] z for a sigmoid binary model).
        binary: True for a one-unit sigmoid model: class 1 → z, class 0 → −z.
    """

    model: keras.Model
    binary: bool

    @classmethod
    def of(cls, model: keras.Model, logits_layer: str | None = None) -> LogitsCopy:
        """Clones `model` with the head's activation removed.

        Args:
            model: A functional or Sequential classifier.
            logits_layer: Optional layer whose (pre-activation) output are the logits.
        """
        head = logits_layer or _final_layer_name(model)
        binary = False

        def clone_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
            nonlocal binary
            config = layer.get_config()
            if layer.name == head:
                if isinstance(layer, keras.layers.Softmax):
                    return _PassThrough(name=layer.name)
                activation = config.get("activation")
                if activation == "sigmoid":
                    binary = True
                if activation in ("softmax", "sigmoid"):
                    if isinstance(layer, keras.layers.Activation):
                        return _PassThrough(name=layer.name)
                    config["activation"] = "linear"
            if isinstance(layer, keras.layers.Lambda):
                # Copying an in-memory Lambda runs no code the model does not already run, but
                # Keras' ambient safe mode refuses it: a model loaded with
                # --unsafe-deserialization could never pass verification.
                return layer.__class__.from_config(config, safe_mode=False)
            return layer.__class__.from_config(config)

        clone = keras.models.clone_model(model, clone_function=clone_layer)
        clone.set_weights(model.get_weights())
        if logits_layer is not None:
            clone = keras.Model(clone.inputs, clone.get_layer(logits_layer).output)
        else:
            # A softmax/sigmoid applied as a Keras op (keras.ops.softmax(x)) is not a layer,
            # so clone_function cannot replace it: take the clone's tensor the op consumes.
            history = clone.outputs[0]._keras_history
            final = history.operation
            name = type(final).__name__
            if not isinstance(final, keras.layers.Layer) and name in ("Softmax", "Sigmoid"):
                (feeding,) = final._inbound_nodes[history.node_index].input_tensors
                clone = keras.Model(clone.inputs, feeding)
                binary = name == "Sigmoid"
        return cls(clone, binary)

    def float64_logits(self) -> Callable[[np.ndarray], np.ndarray] | None:
        """The logits computed in float64 by a float64 clone (float64 input and weights).

        Finite differences of a deep float32 net drown in rounding: a step small enough
        to stay off curvature (and ReLU kinks) changes the logit by less than float32 can
        resolve. In float64 the same step is resolved to ~1e-10. Every layer of the clone
        computes in float64, mixed-precision policies included, so this is the model's
        exact function. Returns None when a layer cannot be cloned in float64 (e.g. custom
        code that hard-codes float32); the caller then differentiates the export instead.
        """
        try:
            inputs = keras.Input(tuple(self.model.inputs[0].shape[1:]), dtype="float64")

            def to_float64(layer: keras.layers.Layer) -> keras.layers.Layer:
                config = layer.get_config()
                if isinstance(layer, keras.layers.Layer):  # ops (keras.ops on tensors) have no dtype
                    config = _float64_config(config)
                if isinstance(layer, keras.layers.Lambda):
                    return layer.__class__.from_config(config, safe_mode=False)
                return layer.__class__.from_config(config)

            clone = keras.models.clone_model(self.model, input_tensors=inputs, clone_function=to_float64)
            clone.set_weights(
                [w.astype(np.float64) if np.issubdtype(w.dtype, np.floating) else w for w in self.model.get_weights()]
            )
        except Exception:  # any layer that cannot be rebuilt in float64: no float64 copy
            return None
        run = tf.function(lambda x: clone(x, training=False), autograph=False, reduce_retracing=True)
        binary = self.binary

        def logits(images: np.ndarray) -> np.ndarray:
            out = run(tf.constant(images, tf.float64))
            if binary:
                out = tf.concat([-out, out], axis=-1)
            return out.numpy()

        return logits

    def logits(self, images: np.ndarray) -> np.ndarray:
        """Eager logits [B,K] (two columns [-z, z] for a binary model)."""
        out = tf.cast(self.model(tf.constant(images), training=False), tf.float32)
        if self.binary:
            out = tf.concat([-out, out], axis=-1)
        return out.numpy()

    def gradient(self, images: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Eager d logit[target] / d images, [B,H,W,C]."""
        x = tf.constant(images, tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = tf.cast(self.model(x, training=False), tf.float32)  # mixed precision: float16 logits
            if self.binary:
                out = tf.concat([-out, out], axis=-1)
            selected = tf.reduce_sum(out * tf.one_hot(target, out.shape[-1]), axis=-1)
        return tape.gradient(selected, x).numpy()


class FunctionReference:
    """The eager reference of an explicit head (`logits_fn`): the caller's function, run eagerly.

    With no layer graph there is nothing to clone; the export traces the same function
    into a graph, so this reference checks the tracing, serialization and loading, and the
    finite-difference check (of the exported logits) checks the gradient itself.

    Attributes:
        binary: Always False: an explicit sigmoid head already returns [-z, z].
    """

    binary = False

    def __init__(
        self,
        logits_fn: Callable[[tf.Tensor], tf.Tensor],
        probabilities_fn: Callable[[tf.Tensor], tf.Tensor],
        reference_probabilities: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self._logits_fn = logits_fn
        self._probabilities_fn = probabilities_fn
        self._reference_probabilities = reference_probabilities

    def logits(self, images: np.ndarray) -> np.ndarray:
        """Eager logits [B,K]."""
        return np.asarray(self._logits_fn(tf.constant(images, tf.float32)))

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """The caller's reference probabilities, else the head's activation of the logits."""
        if self._reference_probabilities is not None:
            return np.asarray(self._reference_probabilities(images), np.float64)
        return np.asarray(self._probabilities_fn(tf.constant(self.logits(images))), np.float64)

    def gradient(self, images: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Eager d logit[target] / d images, [B,H,W,C]."""
        x = tf.constant(images, tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = self._logits_fn(x)
            selected = tf.reduce_sum(out * tf.one_hot(target, out.shape[-1], dtype=out.dtype), axis=-1)
        return tape.gradient(selected, x).numpy()

    def float64_logits(self) -> None:
        """No float64 copy of an arbitrary function exists; finite differences use the export."""
        return None


#: What the references differentiate: a logits copy of a Keras model, or an explicit head's function.
EagerReference = LogitsCopy | FunctionReference


def numpy_saliency(gradient: np.ndarray, reduction: str) -> np.ndarray:
    """Reduces [B,H,W,C] over channels and min-max normalizes each map, in numpy."""
    if reduction == "max_abs":
        maps = np.abs(gradient).max(axis=-1)
    elif reduction == "max":
        maps = gradient.max(axis=-1)
    elif reduction == "sum_abs":
        maps = np.abs(gradient).sum(axis=-1)
    elif reduction == "l2":
        maps = np.sqrt((gradient.astype(np.float64) ** 2).sum(axis=-1))
    else:
        raise ValueError(f"Unknown reduction {reduction!r}.")
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    safe = np.where(span > 0, span, 1.0)
    return np.where(span > 0, (maps - low) / safe, 0.0).astype(np.float32)


def reference_explain(
    copy: EagerReference, images: np.ndarray, target_class: np.ndarray | None, reduction: str
) -> dict[str, np.ndarray]:
    """What `explain` must return, computed eagerly.

    Returns:
        `logits`, `predicted_class`, `target_class`, `gradient` and `saliency`.
    """
    logits = copy.logits(images)
    predicted = logits.argmax(axis=-1).astype(np.int32)
    if target_class is None:
        target = predicted
    else:
        target = np.broadcast_to(np.asarray(target_class, np.int32), predicted.shape)
        target = np.where(target < 0, predicted, target)
    gradient = copy.gradient(images, target)
    return {
        "logits": logits,
        "predicted_class": predicted,
        "target_class": target,
        "gradient": gradient,
        "saliency": numpy_saliency(gradient, reduction),
    }
