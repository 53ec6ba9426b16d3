"""Finding a classifier's pre-softmax logits without touching the user's model.

The saliency map is the gradient of the target class's *logit*: the gradient of a softmax
probability saturates and mixes in every other class. The model usually ends in a
softmax, so the logits have to be found in its graph. Everything here builds new
functional views over the model's existing layers (sharing their weights); no layer is
modified, so the user's model behaves identically after export.

Two ways to get a `LogitsHead`:

* `find_logits(model, logits_layer=None)` — detection in a functional/Sequential graph.
  Supported: a Dense with a fused softmax/sigmoid; a `Softmax` or `Activation("softmax")`
  layer; `keras.ops.softmax` / `keras.activations.softmax` applied as an op to a
  KerasTensor; a model that outputs logits; a one-unit sigmoid (logits [-z, z]). Under a
  mixed-precision policy the logits are computed in the model's compute dtype and cast
  to float32 (the cast is differentiable, so gradients flow through it).
* `explicit_head(logits_fn, input_shape, probabilities="softmax", name=...)` — the caller
  says where the logits are. This is the path for subclassed models, and for any other
  model source (e.g. a SavedModel directory) that can give a function
  `images float32 [B,H,W,C] → logits [B,K]` over tracked variables:

      head = explicit_head(lambda x: net.logits(x), (32, 32, 3))
      SaliencyExporter(net, config, head=head)            # or logits_fn=... directly

  `probabilities` is `"softmax"` (logits [B,K]), `"sigmoid"` (one unit z [B,1] → the
  two-class logits [-z, z], probabilities [1-p, p]) or a callable logits → probabilities.
  Verification of such a head uses `exporter._reference.FunctionReference` (the same
  function run eagerly, and finite differences of it), and compares the exported
  probabilities with `reference_probabilities(images)` when the caller gives one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf

from exporter._errors import LogitsNotFoundError, UnsupportedModelError

__all__ = ["LogitsHead", "explicit_head", "find_logits"]

_HINT = (
    "Name the layer whose output are the logits with --logits-layer NAME "
    "(Python: config logits_layer=NAME)."
)


@dataclasses.dataclass(frozen=True)
class LogitsHead:
    """How to compute logits and probabilities from images.

    Attributes:
        kind: How the logits were found: `fused_softmax` (a Dense with a softmax
            activation), `softmax_layer` (the tensor feeding a Softmax/Activation
            layer), `softmax_op` (the input of `keras.ops.softmax` applied as an op),
            `logits_output` (the model already outputs logits), `sigmoid_binary` (one
            sigmoid unit: logits are [-z, z]), `named_layer`, or `explicit` (the caller's
            `logits_fn`, see `explicit_head`; other sources use their own `saved_model_*`).
        layer_name: The layer the logits come from.
        num_classes: K, the width of the logits.
        logits_fn: images [B,H,W,C] → logits [B,K], in inference mode.
        probabilities_fn: logits → probabilities, matching the model's own output.
    """

    kind: str
    layer_name: str
    num_classes: int
    logits_fn: Callable[[tf.Tensor], tf.Tensor]
    probabilities_fn: Callable[[tf.Tensor], tf.Tensor]
    #: The symbolic tensor of the user's model that `logits_fn` evaluates, and the function
    #: from that tensor's value to the logits: logits_fn(x) == logits_from_tensor(view(x)).
    #: Grad-CAM builds a two-output view (activations, this tensor) from them.
    tensor: Any = None
    logits_from_tensor: Callable[[tf.Tensor], tf.Tensor] | None = None

    def describe(self) -> str:
        """One line for logs and reports."""
        return f"{self.kind} (layer {self.layer_name!r}, {self.num_classes} classes)"


def _activation_name(layer: Any) -> str | None:
    activation = getattr(layer, "activation", None)
    if activation is None:
        return None
    try:
        return keras.activations.serialize(activation)
    except Exception:  # custom activations may not serialize; treat them as unknown
        return getattr(activation, "__name__", repr(activation))


def _producer(tensor: Any) -> tuple[Any, Any]:
    """The layer that produced a symbolic tensor, and that layer's input tensor."""
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        raise LogitsNotFoundError(
            "The model's graph cannot be inspected (a subclassed model?): the logits "
            "cannot be located. Export a functional or Sequential model. " + _HINT
        )
    layer = history.operation
    node = layer._inbound_nodes[history.node_index]
    inputs = node.input_tensors
    return layer, (inputs[0] if len(inputs) == 1 else None)


def _is_op(operation: Any, name: str) -> bool:
    """A Keras op (not a layer) applied to a KerasTensor, e.g. `keras.ops.softmax(x)`.

    `keras.ops.softmax` and `keras.activations.softmax` on a KerasTensor both record a
    `keras.src.ops.nn.Softmax` operation in the graph; compare by class name so that no
    private Keras module is imported.
    """
    return (
        isinstance(operation, keras.Operation)
        and not isinstance(operation, keras.layers.Layer)
        and type(operation).__name__ == name
        and type(operation).__module__.startswith("keras.")
    )


def _submodel(model: keras.Model, tensor: Any) -> keras.Model:
    # One input tensor (not a list), so calling the view with a tensor matches its structure.
    return keras.Model(model.inputs[0], tensor, name=f"{model.name}_logits_view")


def _dense_pre_activation(model: keras.Model, layer: Any, features: Any) -> _Path:
    """logits_fn for a Dense layer, computed without its activation."""
    if not isinstance(layer, keras.layers.Dense) or features is None:
        raise LogitsNotFoundError(
            f"Layer {layer.name!r} ({type(layer).__name__}) applies "
            f"{_activation_name(layer)!r} itself and is not a Dense layer, so its "
            "pre-activation output cannot be recomputed. " + _HINT
        )
    if getattr(layer, "quantization_mode", None):
        raise UnsupportedModelError(
            f"Layer {layer.name!r} is quantized ({layer.quantization_mode}); "
            "quantized heads are not supported. " + _HINT
        )
    def pre_activation(hidden: tf.Tensor) -> tf.Tensor:
        # In the layer's compute dtype, as the layer itself does (mixed precision casts its
        # float32 variables to float16/bfloat16 on read).
        logits = tf.matmul(hidden, tf.cast(layer.kernel, hidden.dtype))
        if layer.use_bias:
            logits = logits + tf.cast(layer.bias, hidden.dtype)
        return _as_float32(logits)

    return _Path(_submodel(model, features), features, pre_activation)


def _as_float32(logits: tf.Tensor) -> tf.Tensor:
    # Mixed precision computes the head in float16/bfloat16; the contract's outputs are
    # float32. tf.cast is differentiable, so the input gradient flows through it.
    return logits if logits.dtype == tf.float32 else tf.cast(logits, tf.float32)


class _Path:
    """images → logits as `post(view(images))`; keeps the view's tensor for Grad-CAM."""

    def __init__(self, view: keras.Model, tensor: Any, post: Callable | None = None) -> None:
        self.view, self.tensor = view, tensor
        self.post = post or tf.identity

    def __call__(self, images: tf.Tensor) -> tf.Tensor:
        return _as_float32(self.post(self.view(images, training=False)))


def _view_fn(view: keras.Model) -> _Path:
    return _Path(view, view.outputs[0])


def _binary(path: _Path) -> _Path:
    """One sigmoid unit z → two-class logits [-z, z] (class 0 → −z, class 1 → +z)."""

    def two_class(value: tf.Tensor) -> tf.Tensor:
        z = _as_float32(path.post(value))
        return tf.concat([-z, z], axis=-1)

    return _Path(path.view, path.tensor, two_class)


def _head(kind: str, layer_name: str, num_classes: int, path: _Path, probabilities_fn: Callable) -> LogitsHead:
    def logits_from_tensor(value: tf.Tensor) -> tf.Tensor:
        return _as_float32(path.post(value))

    return LogitsHead(kind, layer_name, num_classes, path, probabilities_fn, path.tensor, logits_from_tensor)


def _softmax(logits: tf.Tensor) -> tf.Tensor:
    return tf.nn.softmax(logits, axis=-1)


def _width(tensor: Any, where: str) -> int:
    shape = tuple(tensor.shape)
    if len(shape) != 2 or shape[-1] is None:
        raise UnsupportedModelError(
            f"Expected {where} to have shape [batch, classes]; received {shape}. " + _HINT
        )
    return int(shape[-1])


def _named(model: keras.Model, name: str) -> LogitsHead:
    try:
        layer = model.get_layer(name)
    except ValueError:
        names = ", ".join(repr(layer.name) for layer in model.layers)
        raise LogitsNotFoundError(
            f"--logits-layer {name!r} is not a layer of model {model.name!r}; "
            f"its layers are: {names}."
        ) from None
    activation = _activation_name(layer)
    if activation in ("softmax", "sigmoid"):
        # The user named the classifier head itself: use its pre-activation output.
        _, features = _producer(layer.output)
        logits_fn = _dense_pre_activation(model, layer, features)
        units = _width(layer.output, f"layer {name!r}")
        if activation == "sigmoid":
            if units != 1:
                raise UnsupportedModelError(
                    f"Layer {name!r} has {units} sigmoid units (multi-label); only a "
                    "single-unit sigmoid binary classifier is supported."
                )
            return _head("sigmoid_binary", name, 2, _binary(logits_fn), tf.sigmoid)
        return _head("named_layer", name, units, logits_fn, _softmax)
    units = _width(layer.output, f"the output of layer {name!r}")
    return _head("named_layer", name, units, _view_fn(_submodel(model, layer.output)), _softmax)


def find_logits(model: keras.Model, logits_layer: str | None = None) -> LogitsHead:
    """Locates the pre-softmax logits of a single-output classifier.

    Supported without help: a final Dense with a fused softmax; a separate `Softmax` or
    `Activation("softmax")` layer, or `keras.ops.softmax`/`keras.activations.softmax`
    applied as an op (whatever feeds it, e.g. Dropout, is taken as the logits); a model
    that already outputs logits (final layer with a linear
    activation); a one-unit sigmoid binary classifier (logits [-z, z]).

    Args:
        model: A functional or Sequential Keras model with one output.
        logits_layer: Optional override: the layer whose output are the logits.

    Returns:
        The `LogitsHead` for the signatures.

    Raises:
        LogitsNotFoundError: If the logits cannot be located (the message suggests
            `--logits-layer`).
        UnsupportedModelError: If the model is not a single-output classifier.
    """
    outputs = getattr(model, "outputs", None)
    if not outputs:
        raise LogitsNotFoundError(subclassed_message(model))
    if len(outputs) != 1:
        raise UnsupportedModelError(
            f"Expected a classifier with exactly one output; model {model.name!r} has {len(outputs)}."
        )
    if logits_layer is not None:
        return _named(model, logits_layer)

    output = outputs[0]
    width = _width(output, "the model's output")
    layer, features = _producer(output)
    activation = _activation_name(layer)

    softmax_op = _is_op(layer, "Softmax")
    if softmax_op or isinstance(layer, keras.layers.Softmax) or (
        isinstance(layer, keras.layers.Activation) and activation == "softmax"
    ):
        axis = getattr(layer, "axis", -1)
        if isinstance(axis, list | tuple) and len(axis) == 1:
            axis = axis[0]
        if axis not in (-1, 1) or features is None:
            raise LogitsNotFoundError(
                f"Softmax {layer.name!r} normalizes axis {axis}, not the class axis. " + _HINT
            )
        kind = "softmax_op" if softmax_op else "softmax_layer"
        return _head(kind, layer.name, width, _view_fn(_submodel(model, features)), _softmax)

    sigmoid_op = _is_op(layer, "Sigmoid")
    if (sigmoid_op or (isinstance(layer, keras.layers.Activation) and activation == "sigmoid")) and width == 1:
        return _head(
            "sigmoid_binary", layer.name, 2, _binary(_view_fn(_submodel(model, features))), tf.sigmoid
        )

    if activation == "softmax":
        return _head(
            "fused_softmax", layer.name, width, _dense_pre_activation(model, layer, features), _softmax
        )

    if activation == "sigmoid":
        if width != 1:
            raise UnsupportedModelError(
                f"The model ends in {width} sigmoid units (a multi-label model); only "
                "single-label softmax classifiers and one-unit sigmoid binary classifiers "
                "are supported. " + _HINT
            )
        return _head(
            "sigmoid_binary", layer.name, 2, _binary(_dense_pre_activation(model, layer, features)), tf.sigmoid
        )

    if activation == "linear":
        return _head("logits_output", layer.name, width, _view_fn(_submodel(model, output)), _softmax)

    raise LogitsNotFoundError(
        f"Cannot tell whether the output of layer {layer.name!r} ({type(layer).__name__}, "
        f"activation {activation!r}) are logits: expected a final softmax (fused or as a "
        "layer), a one-unit sigmoid, or a linear final layer. " + _HINT
    )


def subclassed_message(model: Any) -> str:
    """The refusal for a model without a symbolic graph, with both ways out."""
    return (
        f"Model {getattr(model, 'name', type(model).__name__)!r} ({type(model).__name__}) is a "
        "subclassed (or unbuilt) Keras model: it has no functional graph, so its logits "
        "cannot be located automatically. Export it from Python and say where the logits "
        "are: SaliencyExporter(model, ExportConfig(input_shape=(H, W, C)), "
        "logits_fn=lambda images: <logits [B,K]>) (or export_model(..., logits_fn=...)); "
        "or rebuild it as a functional or Sequential model and save that."
    )


def explicit_head(
    logits_fn: Callable[[tf.Tensor], tf.Tensor],
    input_shape: tuple[int, int, int],
    probabilities: str | Callable[[tf.Tensor], tf.Tensor] = "softmax",
    *,
    name: str = "logits_fn",
) -> LogitsHead:
    """A `LogitsHead` from a function the caller says computes the logits.

    The path for subclassed models and other model sources without a Keras graph. The
    function is traced into the signatures, so it must use TensorFlow/Keras ops on
    variables that the exported object tracks (e.g. the layers of the model passed to
    `SaliencyExporter`).

    Args:
        logits_fn: images float32 [B,H,W,C] → logits [B,K] (for `"sigmoid"`: z [B,1]), in
            inference mode. Any float dtype; the head casts it to float32.
        input_shape: (H, W, C); the function is run once on zeros to learn K.
        probabilities: `"softmax"`, `"sigmoid"` (one-unit binary classifier: logits
            [-z, z], probabilities [1-p, p]) or a callable logits [B,K] → probabilities.
        name: How the report and logs name the source of the logits.

    Returns:
        The head, of kind `explicit`.

    Raises:
        UnsupportedModelError: The function does not return [batch, classes], or a
            `"sigmoid"` head has more than one unit, or `probabilities` is unknown.
    """
    if not callable(logits_fn):
        raise UnsupportedModelError(
            f"Expected logits_fn to be a callable images → logits; received {type(logits_fn).__name__}."
        )
    probe = logits_fn(tf.zeros([1, *input_shape], tf.float32))
    shape = tuple(getattr(probe, "shape", ()))
    if len(shape) != 2 or shape[-1] is None:
        raise UnsupportedModelError(
            f"Expected logits_fn to return logits [batch, classes]; received shape {shape} "
            f"for images [1, {', '.join(map(str, input_shape))}]."
        )
    width = int(shape[-1])

    def logits(images: tf.Tensor) -> tf.Tensor:
        return _as_float32(logits_fn(images))

    if probabilities == "sigmoid":
        if width != 1:
            raise UnsupportedModelError(
                f'probabilities="sigmoid" expects one logit z per image (a binary classifier); '
                f"logits_fn returns {width}. Use \"softmax\" for {width} classes."
            )

        def two_class(images: tf.Tensor) -> tf.Tensor:
            z = logits(images)
            return tf.concat([-z, z], axis=-1)

        return LogitsHead("explicit", name, 2, two_class, tf.sigmoid)
    if probabilities == "softmax":
        return LogitsHead("explicit", name, width, logits, _softmax)
    if callable(probabilities):
        return LogitsHead("explicit", name, width, logits, lambda z: _as_float32(probabilities(z)))
    raise UnsupportedModelError(
        f'Expected probabilities to be "softmax", "sigmoid" or a callable; received {probabilities!r}.'
    )
