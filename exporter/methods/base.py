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

__all__ = [
    "Check",
    "Graph",
    "Method",
    "NoParams",
    "RequestInput",
    "clean_reference",
    "resolve_classes",
    "max_abs_diff",
    "numpy_saliency",
]

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
        """logits → target class [B], where −1 means the predicted class, −j the j-th most probable.

        For use inside a gradient tape, so resolving the predicted class costs no second
        forward pass (see `exporter._attribution.vanilla_gradient`).
        """
        num_classes = self.num_classes

        def target(logits: tf.Tensor) -> tf.Tensor:
            return resolve_target(target_class, logits, num_classes)

        return target

    def clean_pass(self, images: tf.Tensor, target_class: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """Logits of the unperturbed images and the outputs with the resolved target (one pass)."""
        logits = self.head.logits_fn(images)
        outputs = self.prediction(logits)
        outputs[c.TARGET_CLASS] = resolve_target(target_class, logits, self.num_classes)
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


def resolve_classes(logits: np.ndarray, target_class: np.ndarray | None) -> np.ndarray:
    """NumPy's `resolve_target`: −j → the j-th most probable class of each row (None: −1).

    Args:
        logits: [B, num_classes].
        target_class: [B], [1], [B, K] or [1, K] (broadcast to the batch), or None.

    Returns:
        int32 of the broadcast target's shape, every value a class id.
    """
    logits = np.asarray(logits)
    target = np.asarray(-1 if target_class is None else target_class, np.int32)
    rows = target.reshape(target.shape[0] if target.ndim else 1, -1)  # [1 or B, K]
    rows = np.broadcast_to(rows, (logits.shape[0], rows.shape[1]))
    ranked = np.argsort(-logits, axis=-1, kind="stable")  # ties: lower index first, like argmax
    by_rank = np.take_along_axis(ranked, np.clip(-rows - 1, 0, logits.shape[1] - 1), axis=1)
    resolved = np.where(rows >= 0, rows, by_rank).astype(np.int32)
    return resolved if target.ndim == 2 else resolved[:, 0]


def clean_reference(copy: EagerReference, images: np.ndarray, target_class: np.ndarray | None) -> dict[str, np.ndarray]:
    """Eager `logits`, `predicted_class` and the resolved `target_class` (−1 / None: predicted)."""
    logits = copy.logits(images)
    predicted = logits.argmax(axis=-1).astype(np.int32)
    return {c.LOGITS: logits, c.PREDICTED_CLASS: predicted, c.TARGET_CLASS: resolve_classes(logits, target_class)}


#: A per-image scalar ([batch]) or a per-image stack of baseline images ([batch, N, H, W, C]).
SCALAR, BASELINES = "scalar", "baselines"


@dataclasses.dataclass(frozen=True)
class RequestInput:
    """One optional per-request input of a method's signature (e.g. IG's `steps`).

    Everything about the input derives from this one declaration: the signature's input
    spec, the default recorded in the SignatureDef (`exporter._graph_defaults`), the warmup
    requests, the limits' traces, the in-graph bounds check and the docs.

    Values are per image so TF Serving's batching, which concatenates every input along
    dimension 0, can merge requests; a length-1 value broadcasts to the batch.

    Attributes:
        alias: The input's alias (a name of `serving_client.contract`).
        dtype: `"int32"` or `"float32"`.
        default_field: The parameter giving the default (the export's configured value).
        kind: `SCALAR` ([batch]) or `BASELINES` ([batch, N, H, W, C]; N = 0, the default,
            means the export's constant baseline).
        minimum: The smallest value accepted (scalars).
        maximum_field: The parameter giving the largest value accepted (scalars), or for
            `BASELINES` the largest N; None for no maximum.
    """

    alias: str
    dtype: str
    default_field: str
    kind: str = SCALAR
    minimum: float = 0
    maximum_field: str | None = None

    def maximum(self, params: Any) -> int | float | None:
        """The largest value (or, for baselines, the largest N) the export accepts."""
        return None if self.maximum_field is None else getattr(params, self.maximum_field)

    def default(self, params: Any, input_shape: tuple[int, int, int]) -> np.ndarray:
        """The length-1 default recorded in the SignatureDef."""
        if self.kind == BASELINES:
            return np.zeros((1, 0, *input_shape), np.float32)
        return np.array([getattr(params, self.default_field)], self.dtype)

    def per_image(self, params: Any, batch: int, input_shape: tuple[int, int, int]) -> np.ndarray:
        """The default with one value per image (what warmup and the client send)."""
        value = self.default(params, input_shape)
        return np.repeat(value, batch, axis=0)

    def spec(self, batch: int | None, input_shape: tuple[int, int, int], count: int | None = None) -> tf.TensorSpec:
        """The signature's input spec (`count`: a static N of baselines, for the limits' traces)."""
        shape = [batch] if self.kind == SCALAR else [batch, count, *input_shape]
        return tf.TensorSpec(shape, tf.as_dtype(self.dtype), name=self.alias)

    def describe(self, params: Any) -> str:
        """The allowed values, in words (docs, messages)."""
        maximum = self.maximum(params)
        if self.kind == BASELINES:
            return f"N <= {maximum} finite baseline images per image" if maximum is not None else "finite baselines"
        low = int(self.minimum) if self.dtype == "int32" else self.minimum
        return f"{low} <= {self.alias}" + (f" <= {maximum}" if maximum is not None else "") + (
            " (finite)" if self.dtype == "float32" else ""
        )

    def checked(
        self, value: tf.Tensor, batch: tf.Tensor, params: Any, method: str, input_shape: tuple[int, int, int]
    ) -> tf.Tensor:
        """In the graph: `value` broadcast to the batch once its bounds hold.

        Raises (at run time, InvalidArgumentError → gRPC INVALID_ARGUMENT) naming the input,
        what was received and what is allowed.
        """
        length = tf.shape(value)[0]
        maximum = self.maximum(params)
        bound = f"[methods.{method}] {self.maximum_field}" if self.maximum_field else ""
        checks = [
            tf.debugging.Assert(
                tf.logical_or(tf.equal(length, 1), tf.equal(length, batch)),
                [f"{self.alias} must have length 1 or the batch size; received length", length,
                 "for batch size", batch],
            )
        ]
        if self.kind == SCALAR:
            ok = value >= tf.cast(self.minimum, value.dtype)
            if maximum is not None:
                ok = tf.logical_and(ok, value <= tf.cast(maximum, value.dtype))
            if value.dtype.is_floating:
                ok = tf.logical_and(ok, tf.math.is_finite(value))
            checks.append(
                tf.debugging.Assert(
                    tf.reduce_all(ok),
                    [f"{self.alias} out of range: expected {self.describe(params)}"
                     + (f" (config {bound})" if bound else "") + "; received", value],
                    summarize=16,
                )
            )
            with tf.control_dependencies(checks):
                return tf.broadcast_to(tf.identity(value), [batch])
        shape = tf.shape(value)
        checks.append(
            tf.debugging.Assert(
                tf.reduce_all(tf.equal(shape[2:], tf.constant(input_shape, tf.int32))),
                [f"{self.alias} must be [batch, N, {', '.join(map(str, input_shape))}] (the model's input "
                 "shape); received shape", shape],
            )
        )
        if maximum is not None:
            checks.append(
                tf.debugging.Assert(
                    shape[1] <= maximum,
                    [f"{self.alias}: at most {maximum} baselines per image (config {bound}); received", shape[1]],
                )
            )
        checks.append(
            tf.debugging.Assert(
                tf.reduce_all(tf.math.is_finite(value)), [f"{self.alias} must be finite (received NaN or Inf)"]
            )
        )
        with tf.control_dependencies(checks):
            return tf.broadcast_to(tf.identity(value), tf.concat([[batch], shape[1:]], axis=0))


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
        request_inputs: The optional per-request inputs of its signature beyond `images`
            and `target_class` (`RequestInput`s); `explain` and `reference` then get their
            values as `request` (alias → per-image values).
    """

    name: ClassVar[str]
    params_type: ClassVar[type] = NoParams
    outputs: ClassVar[tuple[str, ...]] = c.EXPLAIN_OUTPUTS
    evaluated: ClassVar[bool] = True
    needs_layer_graph: ClassVar[bool] = False
    request_inputs: ClassVar[tuple[RequestInput, ...]] = ()

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
