"""XRAI (Kapishnikov et al. 2019), its in-graph half: Integrated Gradients from a black and a
white baseline, averaged.

XRAI ranks image regions by the density of IG attributions in them. The regions come from
Felzenszwalb's graph segmentation at several scales, which is not a TensorFlow op, so XRAI is
split in two:

- this signature (`explain_xrai`, stock TF Serving, no custom op) serves the averaged IG
  `attributions` [B,H,W,C], their completeness error `approximation_error` [B], and as
  `saliency` the pixel-level map of those attributions (XRAI's IG; not yet the region map);
- the TF-free client (`serving_client.xrai`, the `xrai` extra with scikit-image) segments the
  image it sent and turns the served attributions into the region-ranked map and masks.

The IG here is the one PAIR's `saliency.core.XRAI` computes (its reference implementation):
for each baseline b, (x − b) ⊙ the mean of the gradients at the `steps` points
b + α (x − b), α = 0, 1/(steps − 1), …, 1 (both ends included, equal weights, PAIR's
`IntegratedGradients` with `x_steps = steps`); then the mean over the two baselines. The
baselines are the constant images at the low and high end of `input_range` (the paper's
black and white, the same for every image), or with `baselines = "image"` the constant
images at each image's own minimum and maximum value (PAIR's default when it is given no
baselines).

Completeness (Vertex's `approximation_error`, for several baselines): the baseline output is
the mean of the baselines' logits (Vertex averages `baselineOutputValue` over baselines), so
the error is |Σ attributions − (F(x) − ½ (F(black) + F(white)))| / |F(x) − ½ (F(black) + F(white))|;
by linearity it is the error of the mean of the two paths, and it is 0 for a linear model.

Cost: 2 × `steps` gradient evaluations per image, `internal_batch` copies per in-graph step,
plus one forward pass of each baseline.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from exporter._attribution import gradient_at
from exporter._config_loader import check_int, check_range, check_str, set_field
from exporter._errors import ConfigError
from exporter._reference import EagerReference
from exporter.methods._path import PathMethod
from exporter.methods.base import Graph, clean_reference, numpy_saliency
from serving_client import contract as c

__all__ = ["Xrai", "XraiParams"]

#: What `[methods.xrai] baselines` may say.
BASELINES: tuple[str, ...] = ("input_range", "image")


@dataclasses.dataclass(frozen=True)
class XraiParams:
    """`[methods.xrai]`, fixed at export (the IG half of XRAI; the regions are the client's).

    Attributes:
        steps: Gradient evaluations per baseline (PAIR's `XRAIParameters.steps`, whose
            default is 100; Vertex's XRAI `step_count` defaults to 50). At least 2: the
            points include both the baseline and the image.
        input_range: (low, high) of the model's inputs: the black and white baselines.
        baselines: `"input_range"` (the constant images `low` and `high`, the paper's black
            and white) or `"image"` (each image's own min and max value, PAIR's default).
    """

    steps: int = 50
    input_range: tuple[float, float] = (0.0, 1.0)
    baselines: str = "input_range"

    def __post_init__(self) -> None:
        check_int("methods.xrai.steps", self.steps, minimum=2)
        set_field(self, "input_range", check_range("methods.xrai.input_range", self.input_range))
        check_str("methods.xrai.baselines", self.baselines)
        if self.baselines not in BASELINES:
            raise ConfigError(
                f"methods.xrai.baselines must be one of {', '.join(BASELINES)}; received {self.baselines!r}."
            )


def _baseline_values(images: tf.Tensor, params: XraiParams) -> tf.Tensor:
    """The two baselines' constant values: [2, 1, 1, 1, 1] (input range) or [2, B, 1, 1, 1]."""
    if params.baselines == "image":
        low = tf.reduce_min(images, axis=[1, 2, 3], keepdims=True)
        high = tf.reduce_max(images, axis=[1, 2, 3], keepdims=True)
        return tf.stack([low, high])
    low_value, high_value = params.input_range
    return tf.reshape(tf.constant([low_value, high_value], tf.float32), [2, 1, 1, 1, 1])


def xrai_path_gradients(
    graph: Graph, images: tf.Tensor, target: tf.Tensor, values: tf.Tensor, steps: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """The mean path gradient from each baseline, `internal_batch` copies at a time.

    Copy i (of 2 × steps) is on the path from baseline i // steps, at α = (i mod steps) /
    (steps − 1). One loop for both paths, so the padding of the last chunk is paid once;
    peak memory O(B × internal_batch).

    Returns:
        (mean gradient from the low baseline, from the high one), each [B,H,W,C].
    """
    count = 2 * steps
    iterations = -(-count // max(1, graph.internal_batch))
    chunk = -(-count // iterations)
    targets = tf.tile(target, [chunk])  # copy-major, matching the [k·B] reshape below

    def body(step: tf.Tensor, low: tf.Tensor, high: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        indices = step * chunk + tf.range(chunk, dtype=tf.int32)
        valid = indices < count
        at = tf.minimum(indices, count - 1)  # padding copies repeat the last point, weight 0
        which = at // steps
        alphas = tf.cast(at % steps, tf.float32) / float(steps - 1)
        base = tf.gather(values, which)  # [k, 1 or B, 1, 1, 1]
        inputs = base + alphas[:, None, None, None, None] * (images[None] - base)
        shape = tf.shape(inputs)
        flat = tf.reshape(inputs, tf.concat([[-1], shape[2:]], axis=0))
        gradients = tf.reshape(gradient_at(graph.head.logits_fn, flat, targets), shape)
        weight = tf.where(valid, 1.0 / steps, 0.0)
        low_weights = tf.where(tf.equal(which, 0), weight, 0.0)
        high_weights = tf.where(tf.equal(which, 1), weight, 0.0)
        return (
            step + 1,
            low + tf.tensordot(low_weights, gradients, axes=[[0], [0]]),
            high + tf.tensordot(high_weights, gradients, axes=[[0], [0]]),
        )

    zero = tf.zeros_like(images)
    _, low, high = tf.while_loop(
        lambda step, *_: step < iterations,
        body,
        (tf.constant(0, tf.int32), zero, zero),
        parallel_iterations=1,
        maximum_iterations=iterations,
    )
    return low, high


class Xrai(PathMethod):
    """XRAI's IG (black and white baselines, averaged) in the graph; regions in the client.

    `saliency` is the pixel-level map of the averaged attributions; the region map is
    computed by the client (`serving_client.xrai.xrai_explanation`) from `attributions`.
    """

    name = "xrai"
    params_type = XraiParams

    def explain(self, graph: Graph, images: tf.Tensor, target_class: tf.Tensor, params: XraiParams) -> dict[str, tf.Tensor]:
        logits, outputs = graph.clean_pass(images, target_class)
        values = _baseline_values(images, params)
        low, high = xrai_path_gradients(graph, images, outputs[c.TARGET_CLASS], values, params.steps)
        attributions = 0.5 * ((images - values[0]) * low + (images - values[1]) * high)
        if params.baselines == "image":
            ones = tf.ones_like(images)
            baseline_logits = 0.5 * (graph.head.logits_fn(values[0] * ones) + graph.head.logits_fn(values[1] * ones))
        else:
            # Two constant images serve the whole batch: [K].
            constant = values[:, 0] * tf.ones_like(images[:1])  # [2, H, W, C]
            baseline_logits = tf.reduce_mean(graph.head.logits_fn(constant), axis=0)
        return self.path_outputs(graph, outputs, logits, attributions, baseline_logits)

    def reference(
        self,
        copy: EagerReference,
        images: np.ndarray,
        target_class: np.ndarray | None,
        reduction: str,
        params: XraiParams,
    ) -> dict[str, np.ndarray]:
        """Per image and baseline, one eager gradient per point, summed in float64."""
        out = clean_reference(copy, images, target_class)
        target = out["target_class"]
        x = images.astype(np.float64)
        if params.baselines == "image":
            flat = x.reshape(len(x), -1)
            bounds = [flat.min(axis=1), flat.max(axis=1)]
        else:
            bounds = [np.full(len(x), v) for v in params.input_range]
        attributions = np.zeros(x.shape, np.float64)
        baseline_logits = np.zeros(out["logits"].shape, np.float64)
        for bound in bounds:
            base = np.broadcast_to(bound[:, None, None, None], x.shape)
            mean_gradient = np.zeros(x.shape, np.float64)
            for alpha in np.linspace(0.0, 1.0, params.steps):
                point = (base + alpha * (x - base)).astype(np.float32)
                mean_gradient += copy.gradient(point, target) / params.steps
            attributions += 0.5 * (x - base) * mean_gradient
            baseline_logits += 0.5 * copy.logits(base.astype(np.float32))
        rows = np.arange(len(target))
        delta = out["logits"][rows, target].astype(np.float64) - baseline_logits[rows, target]
        error = np.abs(attributions.sum(axis=(1, 2, 3)) - delta)
        out[c.ATTRIBUTIONS] = attributions.astype(np.float32)
        out[c.APPROXIMATION_ERROR] = np.where(delta != 0, error / np.where(delta != 0, np.abs(delta), 1.0), 0.0)
        out[c.SALIENCY] = numpy_saliency(out[c.ATTRIBUTIONS], reduction)
        return out
