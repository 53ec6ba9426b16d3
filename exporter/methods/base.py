"""The one base every explanation method is written over.

A method is a small class: its name (the signature's name follows from it), its parameters
(a frozen dataclass, its config table `[methods.<name>]`), the in-graph computation served by
its signature, an independent eager reference that verification compares the export with,
and whether the evaluation can recompute it for a randomized model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np
import tensorflow as tf

from exporter._attribution import resolve_target, saliency_map
from exporter._logits import LogitsHead
from exporter._reference import EagerReference, numpy_saliency
from serving_client import contract as c

__all__ = ["Check", "Graph", "Method", "NoParams", "clean_reference", "max_abs_diff", "numpy_saliency"]

#: (name of the check, measured value, tolerance); verification fails unless value <= tolerance.
Check = tuple[str, float, float]


@dataclasses.dataclass(frozen=True)
class NoParams:
    """The parameters of a method that has none (no `[methods.<name>]` table)."""


@dataclasses.dataclass(frozen=True)
class Graph:
    """What a method's in-graph computation works with (one per export, shared by methods).

    Attributes:
        head: Where the logits come from (`logits_fn`: images → logits [B,K]).
        reduction: The export's channel reduction of the saliency map.
        internal_batch: Copies of each image per in-graph step, for methods that evaluate
            many copies (`[methods] internal_batch`): peak memory O(batch × internal_batch).
        view: What the method's `prepare` returned for this model (None by default).
    """

    head: LogitsHead
    reduction: str
    internal_batch: int
    view: Any = None

    @property
    def num_classes(self) -> int:
        """K, the number of classes."""
        return self.head.num_classes

    def prediction(self, logits: tf.Tensor) -> dict[str, tf.Tensor]:
        """`logits`, `probabilities` and `predicted_class` of the logits."""
        return {
            c.LOGITS: tf.identity(logits),
            c.PROBABILITIES: self.head.probabilities_fn(logits),
            c.PREDICTED_CLASS: tf.argmax(logits, axis=-1, output_type=tf.int32),
        }

    def target_fn(self, target_class: tf.Tensor) -> Callable[[tf.Tensor], tf.Tensor]:
        """logits → target class [B], where −1 means the predicted class.

        For use inside a gradient tape, so resolving the predicted class costs no second
        forward pass (see `exporter._attribution.vanilla_gradient`).
        """
        num_classes = self.num_classes

        def target(logits: tf.Tensor) -> tf.Tensor:
            predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
            return resolve_target(target_class, predicted, num_classes)

        return target

    def clean_pass(self, images: tf.Tensor, target_class: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """Logits of the unperturbed images and the outputs with the resolved target (one pass)."""
        logits = self.head.logits_fn(images)
        outputs = self.prediction(logits)
        outputs[c.TARGET_CLASS] = resolve_target(target_class, outputs[c.PREDICTED_CLASS], self.num_classes)
        return logits, outputs

    def explanation(self, logits: tf.Tensor, target: tf.Tensor, saliency: tf.Tensor) -> dict[str, tf.Tensor]:
        """The outputs every explanation signature has (`EXPLAIN_OUTPUTS`)."""
        outputs = self.prediction(logits)
        outputs[c.TARGET_CLASS] = target
        outputs[c.SALIENCY] = saliency
        return outputs

    def saliency(self, attribution: tf.Tensor) -> tf.Tensor:
        """Raw attribution [B,H,W,C] → the normalized map [B,H,W] in [0, 1]."""
        return saliency_map(attribution, self.reduction)


def clean_reference(copy: EagerReference, images: np.ndarray, target_class: np.ndarray | None) -> dict[str, np.ndarray]:
    """Eager `logits`, `predicted_class` and the resolved `target_class` (−1 / None: predicted)."""
    logits = copy.logits(images)
    predicted = logits.argmax(axis=-1).astype(np.int32)
    target = predicted if target_class is None else np.broadcast_to(np.asarray(target_class, np.int32), predicted.shape)
    return {c.LOGITS: logits, c.PREDICTED_CLASS: predicted, c.TARGET_CLASS: np.where(target < 0, predicted, target)}


class Method:
    """One explanation method. Subclass it, set the class attributes, implement two methods.

    Class attributes:
        name: The method's name: config `[methods] enabled`, CLI `--methods`, the client's
            `method=`; a lower-case identifier. Its signature is `signature_name(name)`.
        params_type: The frozen dataclass of its parameters; its fields are the keys of the
            `[methods.<name>]` table, validated in its `__post_init__`. `NoParams` for none.
        outputs: The signature's output aliases (`EXPLAIN_OUTPUTS` unless it adds some).
        evaluated: Whether the evaluation (randomization test, deletion/insertion) can
            recompute its maps for a randomized model from the signature code alone.
        needs_layer_graph: It looks into the model's layers (`prepare`), so it cannot be
            exported with an explicit logits function.
    """

    name: ClassVar[str]
    params_type: ClassVar[type] = NoParams
    outputs: ClassVar[tuple[str, ...]] = c.EXPLAIN_OUTPUTS
    evaluated: ClassVar[bool] = True
    needs_layer_graph: ClassVar[bool] = False

    @property
    def signature(self) -> str:
        """The serving signature: `explain` for vanilla, else `explain_<name>`."""
        return c.signature_name(self.name)

    def prepare(self, model: Any, head: LogitsHead, params: Any) -> tuple[Any, Any]:
        """What the method needs from the model beyond the logits, once per export.

        Returns:
            (params, view): the parameters as resolved for this model (e.g. a default layer
            made explicit) and the object the in-graph code gets as `Graph.view`.
        """
        del model, head
        return params, None

    def explain(self, graph: Graph, images: tf.Tensor, target_class: tf.Tensor, params: Any) -> dict[str, tf.Tensor]:
        """The signature's computation, traced into the export's graph.

        Args:
            graph: The logits head and the shared helpers (see `Graph`).
            images: float32 [B,H,W,C], the model's input (already converted and checked).
            target_class: int32 [B] or [1]; −1 means the predicted class.
            params: An instance of `params_type`.

        Returns:
            Output alias → tensor, exactly the aliases of `outputs`.
        """
        raise NotImplementedError

    def reference(
        self, copy: EagerReference, images: np.ndarray, target_class: np.ndarray | None, reduction: str, params: Any
    ) -> dict[str, np.ndarray]:
        """What the signature must return, computed eagerly and independently of `explain`.

        Args:
            copy: The eager logits copy of the model (`LogitsCopy`, or `FunctionReference`
                for an explicit head): `.logits(x)`, `.gradient(x, target)`.
            images: float32 [B,H,W,C], the images the model sees.
            target_class: int32 [B], or None for the predicted class.
            reduction: The export's channel reduction.
            params: An instance of `params_type`.

        Returns:
            At least `target_class` and `saliency` (and any output `checks` compares).
        """
        raise NotImplementedError

    def checks(self, served: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray], atol: float) -> list[Check]:
        """Verification's comparisons of the served outputs with the reference (saliency)."""
        return [(c.SALIENCY, max_abs_diff(served[c.SALIENCY], reference[c.SALIENCY]), atol)]

    def figures(self, served: Mapping[str, np.ndarray]) -> dict[str, float]:
        """Extra figures of the served outputs for the export report (none by default)."""
        del served
        return {}

    def __repr__(self) -> str:
        return f"<method {self.name} ({self.signature})>"


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """max |a − b| in float64 (0 for empty arrays)."""
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0
