"""Grad-CAM's view of a model: the spatial activations and the logits, in one forward pass.

Like `_logits`, nothing here modifies the user's model: a new functional model over the
existing layers outputs (activations of the spatial layer, the tensor the logits head
reads), and the head's own `logits_from_tensor` turns the latter into logits. So the
logits are exactly those of the other signatures, fused-softmax heads included.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf

from exporter._errors import UnsupportedModelError
from exporter._logits import LogitsHead

__all__ = ["GradCamView", "find_gradcam_view"]


@dataclasses.dataclass(frozen=True)
class GradCamView:
    """What Grad-CAM differentiates.

    Attributes:
        layer_name: The spatial layer whose activations [B,h,w,k] are weighted.
        activations_and_logits: images [B,H,W,C] → (activations [B,h,w,k], logits [B,K]),
            in inference mode, from one forward pass.
    """

    layer_name: str
    activations_and_logits: Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]]


def _single_output(layer: Any) -> Any:
    # A layer called more than once (shared) has no single `output`: not a Grad-CAM layer.
    try:
        return layer.output
    except (AttributeError, ValueError):
        return None


def _rank4(tensor: Any) -> bool:
    return tensor is not None and not isinstance(tensor, list | tuple) and len(tensor.shape) == 4


def spatial_layer(model: keras.Model, name: str | None = None) -> Any:
    """The layer Grad-CAM explains: `name`, or the last layer with a [B,h,w,k] output.

    Raises:
        UnsupportedModelError: `name` is not a layer or not spatial; or no layer is.
    """
    candidates = [
        layer
        for layer in model.layers
        if not isinstance(layer, keras.layers.InputLayer) and _rank4(_single_output(layer))
    ]
    if name is not None:
        try:
            layer = model.get_layer(name)
        except ValueError:
            raise UnsupportedModelError(
                f"[methods.gradcam] layer {name!r} is not a layer of model {model.name!r}; its spatial "
                f"layers are: {', '.join(repr(c.name) for c in candidates) or 'none'}."
            ) from None
        if layer not in candidates:
            raise UnsupportedModelError(
                f"[methods.gradcam] layer {name!r} does not output a [batch, h, w, channels] feature map "
                f"(its output shape is {getattr(_single_output(layer), 'shape', None)}); name one "
                f"of the spatial layers: {', '.join(repr(c.name) for c in candidates) or 'none'}."
            )
        return layer
    if not candidates:
        seen = ", ".join(
            f"{layer.name!r} {tuple(getattr(_single_output(layer), 'shape', ()))}" for layer in model.layers
        )
        raise UnsupportedModelError(
            f"Grad-CAM needs a spatial layer (output [batch, h, w, channels]) but model "
            f"{model.name!r} has none; its layers are: {seen}. Export without the gradcam method."
        )
    return candidates[-1]


def find_gradcam_view(model: keras.Model, head: LogitsHead, layer_name: str | None = None) -> GradCamView:
    """Builds the (activations, logits) view of `model` for Grad-CAM.

    Args:
        model: The user's functional or Sequential model (not modified).
        head: Its logits head (from `find_logits`); the logits come from the same place.
        layer_name: The spatial layer to explain; the last one by default.

    Returns:
        The `GradCamView`.

    Raises:
        UnsupportedModelError: No usable spatial layer, or a head that cannot be viewed.
    """
    layer = spatial_layer(model, layer_name)
    if head.tensor is None or head.logits_from_tensor is None:
        raise UnsupportedModelError(
            f"The logits head {head.describe()} does not expose the tensor it reads; Grad-CAM "
            "needs it to build its activations-and-logits view."
        )
    view = keras.Model(model.inputs[0], [layer.output, head.tensor], name=f"{model.name}_gradcam_view")
    post = head.logits_from_tensor

    def activations_and_logits(images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        activations, value = view(images, training=False)
        return activations, post(value)

    return GradCamView(layer.name, activations_and_logits)
