"""An existing SavedModel directory as the model to export.

Many teams already serve a SavedModel (written by Keras 3 `model.export`, by
`tf.saved_model.save` of a `tf.Module` or a tf.keras model) whose `serving_default` maps
one image tensor to class probabilities. Its logits are the input of the Softmax (or
Sigmoid) op that produces that output, somewhere in the signature's graph, usually inside
nested function calls (`StatefulPartitionedCall` → the function library).

How the logits are reached, keeping the weights as variables:

1. Grappler's function inlining (the pass `convert_variables_to_constants_v2` runs
   before freezing) flattens the signature's concrete function into one GraphDef whose
   variables are still resource placeholders.
2. From the signature's output tensor, pass-through ops (Identity, IdentityN, …) are
   followed back to the op that produced it: Softmax → its input are the logits
   (`saved_model_softmax_op`); a one-unit Sigmoid → its input z, two-class logits
   [-z, z] (`saved_model_sigmoid_op`). Anything else is refused unless
   `--logits-tensor NAME` names the tensor (`saved_model_named_tensor`).
3. `tf.compat.v1.wrap_function` imports that GraphDef with the images and the loaded
   variables' handles mapped onto its placeholders, and returns the logits tensor: a
   concrete function images → logits over the *same* variables, so the export writes
   them to its own checkpoint (no constants are baked into the graph).

The eager reference (`SavedModelSource.reference`) is built another way: the signature
frozen with `convert_variables_to_constants_v2` (weights read once into constants),
the logits tensor taken from that frozen graph, run eagerly under a `tf.GradientTape`.
It shares the inlining and the tensor's name with the exported path, not the variables,
the signature code or the loader. What pins the logits to the *original* model is
checked against the untouched loaded signature (`check_against_original`):

- the probabilities: softmax (or sigmoid) of the logits equals the signature's output;
- the gradient: a softmax output determines the logits only up to a per-image shift,
  so the checkable identity is ∇ log p_t = Σ_j (δ_tj − p_j) ∇z_j (p held fixed), with
  ∇ log p_t taken by a GradientTape through the loaded signature's own function calls;
  for a sigmoid output z = log p − log(1 − p) exactly, so ∇z itself is compared;
- a named tensor that *is* a linear output is compared with it directly (logits and ∇z_t);
  a named tensor on a linear output that is not the output itself has nothing in the
  signature to compare with, and the report says so.

Refused, each with the reason: a signature with several inputs or outputs, or a
non-float32 image input; a multi-label sigmoid; a graph reading resources other than
variables (lookup tables); and settings that need Keras layers (`logits_layer`, Grad-CAM,
the evaluation gate's weight randomization).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from exporter._errors import (
    LogitsNotFoundError,
    ModelLoadError,
    UnsupportedModelError,
    VerificationError,
)
from exporter._logits import LogitsHead

__all__ = [
    "LOGITS_KINDS",
    "LogitsTensor",
    "SavedModelSource",
    "find_logits_tensor",
    "is_saved_model_dir",
    "load_saved_model",
    "saved_model_exporter",
    "saved_model_fingerprint",
]

logger = logging.getLogger("exporter")

#: `logits.kind` in the report for each way the logits of a SavedModel were found.
SOFTMAX_OP, SIGMOID_OP, NAMED_TENSOR = "saved_model_softmax_op", "saved_model_sigmoid_op", "saved_model_named_tensor"
LOGITS_KINDS: tuple[str, ...] = (SOFTMAX_OP, SIGMOID_OP, NAMED_TENSOR)

#: Ops that forward their i-th input unchanged to their i-th output.
_PASS_THROUGH = frozenset({"Identity", "IdentityN", "Snapshot", "StopGradient", "PreventGradient"})
_HINT = (
    "Name the logits tensor with --logits-tensor NAME "
    "(Python: export_model(..., source_options={'logits_tensor': NAME}))."
)


def is_saved_model_dir(path: str | Path) -> bool:
    """True for a directory holding a `saved_model.pb` (or `.pbtxt`)."""
    path = Path(path)
    return path.is_dir() and any((path / name).is_file() for name in ("saved_model.pb", "saved_model.pbtxt"))


def saved_model_fingerprint(path: str | Path) -> str:
    """SHA-256 over the SavedModel's graph and variables files (names and bytes).

    Assets are left out: they do not change what the model computes here.

    Returns:
        `"sha256:<hex>"`.
    """
    path = Path(path)
    files = [p for p in (path / "saved_model.pb", path / "saved_model.pbtxt") if p.is_file()]
    files += sorted(p for p in (path / "variables").glob("*") if p.is_file())
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.relative_to(path).as_posix().encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return "sha256:" + digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class LogitsTensor:
    """Where the logits are in the inlined signature graph.

    Attributes:
        name: The graph tensor (`"op_name:0"`) holding the logits (z for a sigmoid).
        kind: One of `LOGITS_KINDS`.
        activation_op: The Softmax/Sigmoid op consuming it; None for a named tensor.
    """

    name: str
    kind: str
    activation_op: str | None


def _tensor_name(name: str) -> str:
    return name if ":" in name else f"{name}:0"


def _split(name: str) -> tuple[str, int]:
    op, _, port = _tensor_name(name.lstrip("^")).partition(":")
    return op, int(port)


def _data_inputs(node: Any) -> list[str]:
    return [name for name in node.input if not name.startswith("^")]


def _producer_chain(nodes: dict[str, Any], output: str) -> list[Any]:
    """The ops from the output back through pass-through ops; the last one computed it."""
    chain = []
    op, port = _split(output)
    seen = set()
    while op in nodes and op not in seen:
        seen.add(op)
        node = nodes[op]
        chain.append(node)
        if node.op not in _PASS_THROUGH:
            break
        inputs = _data_inputs(node)
        if port >= len(inputs):
            break
        op, port = _split(inputs[port])
    return chain


def find_logits_tensor(graph_def: Any, output: str, logits_tensor: str | None = None) -> LogitsTensor:
    """Finds the logits of a signature output in an inlined (flat) GraphDef.

    Args:
        graph_def: The signature's GraphDef with its function calls inlined.
        output: The graph tensor of the signature's output.
        logits_tensor: Optional override: the graph tensor of the logits.

    Returns:
        The `LogitsTensor`.

    Raises:
        LogitsNotFoundError: The output is not computed by a Softmax/Sigmoid op (the
            message shows the ops that compute it and suggests --logits-tensor), or the
            named tensor is not in the graph.
    """
    nodes = {node.name: node for node in graph_def.node}
    if logits_tensor is not None:
        op, port = _split(logits_tensor)
        if op not in nodes:
            similar = [name for name in nodes if name.endswith(op.rsplit("/", 1)[-1])][:8]
            raise LogitsNotFoundError(
                f"--logits-tensor {logits_tensor!r} is not a tensor of the signature's graph "
                f"(names are those after function inlining, e.g. 'StatefulPartitionedCall/…/"
                f"BiasAdd:0'); ops with a similar name: {similar or 'none'}."
            )
        return LogitsTensor(f"{op}:{port}", NAMED_TENSOR, None)
    chain = _producer_chain(nodes, output)
    if not chain:
        raise LogitsNotFoundError(f"The signature's output {output!r} is not in its graph. " + _HINT)
    last = chain[-1]
    if last.op in ("Softmax", "Sigmoid") and _data_inputs(last):
        kind = SOFTMAX_OP if last.op == "Softmax" else SIGMOID_OP
        return LogitsTensor(_tensor_name(_data_inputs(last)[0]), kind, last.name)
    path = " ← ".join(f"{node.op} {node.name!r}" for node in chain)
    raise LogitsNotFoundError(
        f"The signature's output is not produced by a Softmax or Sigmoid op, so its logits "
        f"cannot be located: expected …Softmax → output, received {path}. If the output "
        f"already are the logits, name that tensor ('{last.name}:0'). " + _HINT
    )


def _inline(function: Any) -> Any:
    # Grappler's function inlining only: the graph keeps its variable placeholders. This is
    # the first step of convert_variables_to_constants_v2, which has no public entry point.
    from tensorflow.python.framework import convert_to_constants

    return convert_to_constants._run_inline_graph_optimization(  # noqa: SLF001
        function, lower_control_flow=False, aggressive_inlining=True
    )


def _variables_by_handle(root: Any) -> dict[int, tf.Variable]:
    found: dict[int, tf.Variable] = {}
    for trackable in tf.train.TrackableView(root).descendants():
        if isinstance(trackable, tf.Variable):
            found[id(trackable.handle)] = trackable
    return found


def _images_to(graph_def: Any, feeds: list[str], images_spec: tf.TensorSpec, fetch: str, captures: list[Any]) -> Any:
    """A concrete function images → `fetch`, importing `graph_def` with its inputs mapped.

    `feeds[0]` is the images placeholder; `feeds[1:]` receive `captures` (variables:
    their handles, captured and marked as read so the export tracks and saves them).
    """

    def body(images: tf.Tensor) -> tf.Tensor:
        graph = tf.compat.v1.get_default_graph()
        mapped = {feeds[0]: images}
        for name, value in zip(feeds[1:], captures, strict=True):
            if isinstance(value, tf.Variable):
                graph.watch_variable(value)
                mapped[name] = graph.capture(value.handle)
            else:
                mapped[name] = graph.capture(value)
        return tf.graph_util.import_graph_def(graph_def, input_map=mapped, return_elements=[fetch], name="source")[0]

    return tf.compat.v1.wrap_function(body, [images_spec])


class SavedModelSource(tf.Module):
    """One signature of a loaded SavedModel, with its logits located.

    A `tf.Module` that tracks the loaded object, so the export can track it in turn;
    `inputs`/`outputs` are the signature's TensorSpecs (what the exporter reads the image
    shape from).

    Attributes:
        path: The SavedModel directory.
        signature: The signature used.
        input_key: The signature's image input.
        output_key: The signature's probabilities output.
        logits: Where the logits are (`LogitsTensor`).
        head: The `LogitsHead` the signatures are built on (over the loaded variables).
        reference: The frozen (constants) images → logits function, for the eager reference.
    """

    def __init__(self, path: Path, signature: str, loaded: Any, logits_tensor: str | None = None) -> None:
        super().__init__(name="saved_model_source")
        self.path = path
        self.signature = signature
        self.loaded = loaded
        self._function = loaded.signatures[signature]
        _, keywords = self._function.structured_input_signature
        if len(keywords) != 1:
            raise UnsupportedModelError(
                f"Expected signature {signature!r} to take one image tensor; it takes "
                f"{len(keywords)}: {sorted(keywords)}."
            )
        (self.input_key, self._input_spec), = keywords.items()
        self._graph_def = _inline(self._function)
        self.output_key, self._output_spec, self._output_name = self._choose_output()
        self._check_specs()
        self._binary = False
        self.logits, self.head = self._locate(logits_tensor)
        self.reference: Callable[[tf.Tensor], tf.Tensor] = self._frozen_logits()

    # -- what the exporter reads of a model ----------------------------------------------
    @property
    def inputs(self) -> list[tf.TensorSpec]:
        """The signature's image input spec, as a one-element list (like `keras.Model.inputs`)."""
        return [self._input_spec]

    @property
    def outputs(self) -> list[tf.TensorSpec]:
        """The signature's output spec, as a one-element list."""
        return [self._output_spec]

    def describe(self) -> dict[str, Any]:
        """What the report says of the source."""
        return {
            "format": "saved_model",
            "signature": self.signature,
            "input": {"key": self.input_key, "shape": self._input_spec.shape.as_list()},
            "output": {"key": self.output_key, "shape": self._output_spec.shape.as_list()},
            "logits_tensor": self.logits.name,
            "activation_op": self.logits.activation_op,
        }

    def _check_specs(self) -> None:
        spec, out = self._input_spec, self._output_spec
        if spec.dtype != tf.float32 or spec.shape.rank != 4:
            raise UnsupportedModelError(
                f"Expected signature {self.signature!r} input {self.input_key!r} to be float32 images "
                f"[batch, H, W, C]; received {spec.dtype.name} {spec.shape.as_list()}."
            )
        if out.dtype != tf.float32 or out.shape.rank != 2:
            raise UnsupportedModelError(
                f"Expected signature {self.signature!r} output {self.output_key!r} to be float32 "
                f"probabilities [batch, classes]; received {out.dtype.name} {out.shape.as_list()}."
            )

    # -- logits ------------------------------------------------------------------------
    def _choose_output(self) -> tuple[str, tf.TensorSpec, str]:
        """The probabilities output: the only one, or the only one a Softmax/Sigmoid produces.

        Signatures often return more (e.g. `{"probabilities", "class_ids"}`); the others
        are not part of the explanation contract and are left out of the export.
        """
        outputs = self._function.structured_outputs
        if not isinstance(outputs, dict) or not outputs:
            raise UnsupportedModelError(
                f"Expected signature {self.signature!r} to return a dict of tensors (the class "
                f"probabilities); it returns {type(outputs).__name__}."
            )
        keys = sorted(outputs)  # the order of function.outputs (tf.nest flattens dicts by key)
        names = {key: tensor.name for key, tensor in zip(keys, self._function.outputs, strict=True)}
        if len(keys) == 1:
            return keys[0], outputs[keys[0]], names[keys[0]]
        nodes = {node.name: node for node in self._graph_def.node}
        activated = [
            key
            for key in keys
            if outputs[key].dtype == tf.float32
            and outputs[key].shape.rank == 2
            and (chain := _producer_chain(nodes, names[key]))
            and chain[-1].op in ("Softmax", "Sigmoid")
        ]
        if len(activated) != 1:
            raise UnsupportedModelError(
                f"Expected signature {self.signature!r} to return the class probabilities as its only "
                f"output, or as the only output a Softmax/Sigmoid produces; it returns {keys}, "
                f"{len(activated)} of them from a Softmax/Sigmoid ({activated}). Pick another "
                "signature with --signature."
            )
        logger.info("Signature %r returns %s; explaining %r (a Softmax/Sigmoid output)", self.signature, keys, activated[0])
        return activated[0], outputs[activated[0]], names[activated[0]]

    def _locate(self, logits_tensor: str | None) -> tuple[LogitsTensor, LogitsHead]:
        function = self._function
        output = self._output_name
        found = find_logits_tensor(self._graph_def, output, logits_tensor)
        chain = _producer_chain({node.name: node for node in self._graph_def.node}, output)
        #: The output is a Softmax/Sigmoid (else: a named tensor on a non-probability output).
        self.output_is_probabilities = bool(chain) and chain[-1].op in ("Softmax", "Sigmoid")
        produced = {f"{node.name}:0" for node in chain}
        self._output_is_logits = not self.output_is_probabilities and found.name in produced
        arguments = len(function.inputs) - len(function.captured_inputs)
        if arguments != 1:
            raise UnsupportedModelError(f"Expected one placeholder for the images; the signature has {arguments}.")
        by_handle = _variables_by_handle(self.loaded)
        captures: list[Any] = []
        for handle in function.captured_inputs:
            if handle.dtype == tf.resource:
                if id(handle) not in by_handle:
                    raise UnsupportedModelError(
                        f"Signature {self.signature!r} reads a resource that is not a variable "
                        f"(a lookup table or iterator?); only variables are supported."
                    )
                captures.append(by_handle[id(handle)])
            else:
                captures.append(handle)
        feeds = [tensor.name for tensor in function.inputs]
        spec = tf.TensorSpec(self._input_spec.shape, tf.float32)
        logits_fn = _images_to(self._graph_def, feeds, spec, found.name, captures)
        z = logits_fn.structured_outputs
        if z.shape.rank != 2 or z.shape[-1] is None:
            raise UnsupportedModelError(
                f"Expected the logits tensor {found.name!r} to be [batch, classes]; received shape "
                f"{z.shape}. " + _HINT
            )
        width = int(z.shape[-1])
        if z.dtype != tf.float32:
            cast = logits_fn
            logits_fn = lambda images: tf.cast(cast(images), tf.float32)  # noqa: E731
        return found, self._head(found, logits_fn, width, chain)

    def _head(self, found: LogitsTensor, logits_fn: Callable, width: int, chain: list[Any]) -> LogitsHead:
        classes = int(self._output_spec.shape[-1]) if self._output_spec.shape[-1] is not None else None
        sigmoid = bool(chain) and chain[-1].op == "Sigmoid"
        if found.kind == SIGMOID_OP or (found.kind == NAMED_TENSOR and (sigmoid or classes == 1)):
            if width != 1:
                raise UnsupportedModelError(
                    f"The output is {width} sigmoid units (a multi-label model); only single-label "
                    "softmax classifiers and one-unit sigmoid binary classifiers are supported."
                )
            self._binary = True

            def two_class(images: tf.Tensor) -> tf.Tensor:
                z = logits_fn(images)
                return tf.concat([-z, z], axis=-1)

            return LogitsHead(found.kind, found.name, 2, two_class, tf.sigmoid)
        if classes is not None and width != classes:
            raise UnsupportedModelError(
                f"The logits tensor {found.name!r} has {width} values but the signature outputs "
                f"{classes} classes; name the tensor of the class logits. " + _HINT
            )
        return LogitsHead(found.kind, found.name, width, logits_fn, lambda z: tf.nn.softmax(z, axis=-1))

    def _frozen_logits(self) -> Callable[[tf.Tensor], tf.Tensor]:
        from tensorflow.python.framework.convert_to_constants import (
            convert_variables_to_constants_v2,
        )

        frozen = convert_variables_to_constants_v2(self._function)
        graph_def = frozen.graph.as_graph_def()
        feed = frozen.inputs[0].name
        names = {node.name for node in graph_def.node}
        if _split(self.logits.name)[0] not in names:
            raise UnsupportedModelError(
                f"The logits tensor {self.logits.name!r} is not in the frozen graph; the reference "
                "cannot be built."
            )
        z = _images_to(graph_def, [feed], tf.TensorSpec(self._input_spec.shape, tf.float32), self.logits.name, [])
        binary = self._binary

        def logits(images: tf.Tensor) -> tf.Tensor:
            out = tf.cast(z(images), tf.float32)
            return tf.concat([-out, out], axis=-1) if binary else out

        return logits

    # -- the original signature ----------------------------------------------------------
    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """The original signature's output on `images` ([1 − p, p] for a sigmoid model)."""
        out = np.asarray(self._call(tf.constant(images, tf.float32)), np.float64)
        return np.concatenate([1.0 - out, out], axis=-1) if self._binary else out

    def check_against_original(self, images: np.ndarray, tolerances: Any) -> dict[str, Any]:
        """Pins the reference logits to the untouched loaded signature (see the module doc).

        Args:
            images: Sample inputs [N,H,W,C].
            tolerances: A `VerificationConfig` (`probabilities_atol`, `logits_atol`, and
                `fd_rtol` for the gradient, relative to the largest gradient).

        Returns:
            The figures: what the signature's output was compared as (`compared_as`:
            probabilities, logits, or nothing when a named tensor is neither), the max
            difference and the gradient identity's relative error.

        Raises:
            VerificationError: The reference logits do not reproduce the signature's output
                or its gradient.
        """
        x = tf.constant(images, tf.float32)
        logits = self.reference(x)
        target = logits.numpy().argmax(axis=-1)
        if self.output_is_probabilities:
            compared_as, atol = "probabilities", tolerances.probabilities_atol
            received_output = self.head.probabilities_fn(logits).numpy()
        elif self._output_is_logits:
            compared_as, atol = "logits", tolerances.logits_atol
            received_output = logits.numpy()[:, 1:] if self._binary else logits.numpy()
        else:
            return {
                "compared_as": None,
                "reason": f"the output is not produced by a softmax/sigmoid and the named tensor "
                f"{self.logits.name!r} is not the output, so the original signature defines neither "
                "probabilities nor logits to compare with",
            }
        original = self.probabilities(images) if self.output_is_probabilities else np.asarray(self._call(x), np.float64)
        output_diff = float(np.max(np.abs(received_output.astype(np.float64) - original)))
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = self._call(x)
            if compared_as == "logits":
                selected = out[:, 0] if self._binary else tf.gather(out, target, axis=1, batch_dims=1)
            elif self._binary:
                # z = log p − log(1 − p): the logit itself is determined by the output.
                selected = tf.math.log(out[:, 0]) - tf.math.log1p(-out[:, 0])
            else:
                selected = tf.math.log(tf.gather(out, target, axis=1, batch_dims=1))
        expected = tape.gradient(selected, x).numpy().astype(np.float64)
        with tf.GradientTape() as tape:
            tape.watch(x)
            z = self.reference(x)
            if self._binary:
                selected = z[:, 1]
            elif compared_as == "logits":
                selected = tf.gather(z, target, axis=1, batch_dims=1)
            else:
                # ∇ log p_t = Σ_j (δ_tj − p_j) ∇z_j, with p held fixed.
                weights = tf.one_hot(target, z.shape[-1]) - tf.stop_gradient(tf.nn.softmax(z, axis=-1))
                selected = tf.reduce_sum(weights * z, axis=-1)
        received = tape.gradient(selected, x).numpy().astype(np.float64)
        scale = max(float(np.max(np.abs(expected))), 1e-12)
        gradient_error = float(np.max(np.abs(received - expected))) / scale
        figures = {
            "compared_as": compared_as,
            "output_max_abs_diff": output_diff,
            "output_tolerance": atol,
            "gradient_identity": self._identity(compared_as),
            "gradient_max_error_relative_to_max_gradient": gradient_error,
            "gradient_tolerance": tolerances.fd_rtol,
        }
        if not output_diff <= atol:
            raise VerificationError(
                f"The logits tensor {self.logits.name!r} does not reproduce the signature's "
                f"{compared_as}: max difference {output_diff:.3g} exceeds {atol:.3g}. " + _HINT
            )
        if not gradient_error <= tolerances.fd_rtol:
            raise VerificationError(
                f"The logits tensor {self.logits.name!r} does not reproduce the gradient of the "
                f"original signature ({figures['gradient_identity']}): max error {gradient_error:.3g} "
                f"of the largest gradient exceeds {tolerances.fd_rtol:.3g}. " + _HINT
            )
        return figures

    def _identity(self, compared_as: str) -> str:
        if compared_as == "logits":
            return "grad z_t = grad output_t"
        if self._binary:
            return "grad z = grad (log p - log(1 - p))"
        return "grad log p_t = sum_j (delta_tj - p_j) grad z_j"

    def _call(self, images: tf.Tensor) -> tf.Tensor:
        return self._function(**{self.input_key: images})[self.output_key]


def load_saved_model(
    path: str | Path, *, signature: str | None = None, logits_tensor: str | None = None
) -> SavedModelSource:
    """Loads a SavedModel directory and locates the logits of one of its signatures.

    Args:
        path: The SavedModel directory (`saved_model.pb` + `variables/`).
        signature: The signature to export; `serving_default` by default.
        logits_tensor: The graph tensor of the logits, when the output is not produced
            by a Softmax/Sigmoid op (names as after function inlining).

    Returns:
        The `SavedModelSource`.

    Raises:
        ModelLoadError: Not a SavedModel directory, it cannot be loaded, or it has no
            such signature.
        UnsupportedModelError: The signature is not one image tensor → probabilities.
        LogitsNotFoundError: The logits cannot be located (suggests --logits-tensor).
    """
    path = Path(path)
    if not is_saved_model_dir(path):
        raise ModelLoadError(f"Expected a SavedModel directory (with saved_model.pb); {path} has none.")
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as error:  # TF raises many types for a bad directory; report them as one.
        raise ModelLoadError(f"Could not load {path} as a SavedModel: {error}") from error
    signature = signature or "serving_default"
    available = sorted(getattr(loaded, "signatures", {}) or {})
    if signature not in available:
        raise ModelLoadError(
            f"SavedModel {path} has no signature {signature!r}; its signatures are: "
            f"{', '.join(repr(name) for name in available) or 'none'}. Pick one with --signature."
        )
    source = SavedModelSource(path, signature, loaded, logits_tensor)
    logger.info("SavedModel %s signature %r: logits %s (%s)", path, signature, source.logits.name, source.logits.kind)
    return source


def saved_model_exporter(
    path: str | Path,
    config: Any = None,
    *,
    signature: str | None = None,
    logits_tensor: str | None = None,
) -> Any:
    """A `SaliencyExporter` for a SavedModel directory (the hook `export_model` calls).

    Loads the signature, locates its logits, checks them against the untouched signature
    on the verification samples (`check_against_original`), and builds the exporter on
    the located head; its eager reference is the frozen logits function.

    Args:
        path: The SavedModel directory.
        config: An `ExportConfig` (default settings when None).
        signature: The signature to export (`serving_default` by default).
        logits_tensor: The graph tensor of the logits, overriding detection.

    Returns:
        The `SaliencyExporter`, ready to `write()`.

    Raises:
        ModelLoadError, UnsupportedModelError, LogitsNotFoundError: See `load_saved_model`.
        ConfigError: A setting a SavedModel source cannot honour (logits_layer, Grad-CAM,
            the evaluation gate: there is no layer graph).
        VerificationError: The located logits do not reproduce the original signature.
    """
    from exporter._config import ExportConfig
    from exporter._errors import ConfigError
    from exporter._export import SaliencyExporter
    from exporter._reference import FunctionReference

    config = config or ExportConfig()
    if config.logits_layer is not None:
        raise ConfigError(
            f"logits_layer {config.logits_layer!r} names a Keras layer; a SavedModel has none. "
            "Use --logits-tensor NAME for a SavedModel directory."
        )
    from exporter import methods

    layer_methods = [m for m in config.methods.enabled if methods.get(m).needs_layer_graph]
    for setting, enabled in (
        (f"The {', '.join(layer_methods)} method", bool(layer_methods)),
        ("[evaluation] enabled", config.evaluation.enabled),
    ):
        if enabled:
            raise ConfigError(
                f"{setting} is not supported for a SavedModel directory: it needs the model's "
                "layers (Grad-CAM: a spatial layer; the randomization test: weights to "
                "re-initialize), and a SavedModel has only a graph. Remove it, or export the "
                "Keras model."
            )
    source = load_saved_model(path, signature=signature, logits_tensor=logits_tensor)
    exporter = SaliencyExporter(
        source,
        config,
        model_path=path,
        head=source.head,
        reference_probabilities=source.probabilities if source.output_is_probabilities else None,
    )
    # Not the exported function run eagerly: the frozen copy (see the module docstring).
    exporter.reference = FunctionReference(
        source.reference,
        source.head.probabilities_fn,
        source.probabilities if source.output_is_probabilities else None,
    )
    # On samples drawn as verify_export draws its own (same seed, range and count).
    verification = config.verification
    low, high = verification.sample_range
    samples = np.random.default_rng(verification.seed).uniform(
        low, high, (verification.num_samples, *exporter.input_shape)
    ).astype(np.float32)
    checks = source.check_against_original(samples, verification)
    logger.info("Logits vs the original signature: %s", checks)
    exporter.model_details["saved_model"] = {**source.describe(), "original_signature_checks": checks}
    return exporter
