"""Grad-CAM (Selvaraju et al. 2017): the class-weighted activations of a spatial layer."""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from exporter._attribution import gradcam
from exporter._config_loader import check_optional_str
from exporter._gradcam import GradCamView, find_gradcam_view
from exporter._logits import LogitsHead
from exporter._reference import EagerReference, LogitsCopy
from exporter.methods.base import Graph, Method, clean_reference, numpy_saliency

__all__ = ["GradCam", "GradCamParams"]


@dataclasses.dataclass(frozen=True)
class GradCamParams:
    """`[methods.gradcam]`.

    Attributes:
        layer: The spatial layer explained; by default the last layer whose output is
            [batch, h, w, channels].
    """

    layer: str | None = None

    def __post_init__(self) -> None:
        check_optional_str("methods.gradcam.layer", self.layer)


class GradCam(Method):
    """ReLU(Σ_k w_k A_k), w_k the spatial mean of d logit / d A_k; upsampled bilinearly."""

    name = "gradcam"
    params_type = GradCamParams
    # Randomizing the model would need its Grad-CAM view rebuilt; not done by the evaluation yet.
    evaluated = False
    needs_layer_graph = True

    def prepare(self, model: Any, head: LogitsHead, params: GradCamParams) -> tuple[GradCamParams, GradCamView]:
        """Finds the layer (the last spatial one by default) and the (activations, logits) view."""
        view = find_gradcam_view(model, head, params.layer)
        return dataclasses.replace(params, layer=view.layer_name), view

    def explain(self, graph: Graph, images: tf.Tensor, target_class: tf.Tensor, params: GradCamParams) -> dict[str, tf.Tensor]:
        if not isinstance(graph.view, GradCamView):
            raise ValueError(
                f"The gradcam method needs its GradCamView (from GradCam.prepare); received {graph.view!r}."
            )
        saliency, logits, target = gradcam(graph.view.activations_and_logits, images, graph.target_fn(target_class))
        return graph.explanation(logits, target, saliency)

    def reference(
        self, copy: EagerReference, images: np.ndarray, target_class: np.ndarray | None, reduction: str, params: GradCamParams
    ) -> dict[str, np.ndarray]:
        """Eager GradientTape on the copy's activations of `params.layer` (resolved by `prepare`).

        Channel weights, ReLU and min-max are in numpy; only the bilinear resize is
        TensorFlow's (`tf.image.resize`, as documented for the signature). The map is
        normalized as it is, whatever the export's reduction (it has one channel).
        """
        del reduction
        if not isinstance(copy, LogitsCopy):
            raise ValueError(
                f"The Grad-CAM reference needs a logits copy of a Keras model (its layers); received {copy!r}."
            )
        if params.layer is None:
            raise ValueError("The Grad-CAM reference needs the resolved layer (GradCam.prepare sets it).")
        out = clean_reference(copy, images, target_class)
        view = keras.Model(copy.model.inputs, [copy.model.get_layer(params.layer).output, copy.model.outputs[0]])
        x = tf.constant(images, tf.float32)
        with tf.GradientTape() as tape:
            activations, logits = view(x, training=False)
            tape.watch(activations)
            logits = tf.cast(logits, tf.float32)  # mixed precision: float16 logits
            if copy.binary:
                logits = tf.concat([-logits, logits], axis=-1)
            selected = tf.reduce_sum(logits * tf.one_hot(out["target_class"], logits.shape[-1]), axis=-1)
        gradient = tape.gradient(selected, activations).numpy().astype(np.float64)
        activations = activations.numpy().astype(np.float64)
        weights = gradient.mean(axis=(1, 2), keepdims=True)
        cam = np.maximum((weights * activations).sum(axis=-1, keepdims=True), 0.0)
        upsampled = tf.image.resize(cam.astype(np.float32), images.shape[1:3], method="bilinear").numpy()
        out["saliency"] = numpy_saliency(upsampled, "max")
        return out
