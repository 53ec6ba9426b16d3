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

A request may send `steps` (int32 [batch], 2 ≤ steps ≤ `max_steps`, the export's `steps` by
default), as the IG family's signatures take it: each image gets its own path points, and the
batch costs what its largest `steps` costs.

Cost: 2 × `steps` gradient evaluations per image (the baselines' logits come from the paths'
first points), `internal_batch` copies per in-graph step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from exporter._attribution import chunked_gradient_sum, even_chunk
from exporter._config_loader import check_int, check_range, check_str, set_field
from exporter._errors import ConfigError
from exporter._reference import EagerReference
from exporter.methods._path import PathMethod
from exporter.methods.base import Graph, RequestInput, clean_reference, numpy_saliency
from exporter.methods.integrated_gradients import check_maximum, request_values
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
            points include both the baseline and the image. The default of the per-request
            `steps` input.
        max_steps: The largest `steps` a request may ask for (default 4 × steps, at least 256).
        input_range: (low, high) of the model's inputs: the black and white baselines.
        baselines: `"input_range"` (the constant images `low` and `high`, the paper's black
            and white) or `"image"` (each image's own min and max value, PAIR's default).
    """

    steps: int = 50
    input_range: tuple[float, float] = (0.0, 1.0)
    baselines: str = "input_range"
    max_steps: int | None = None

    def __post_init__(self) -> None:
        check_int("methods.xrai.steps", self.steps, minimum=2)
        set_field(self, "max_steps", check_maximum("methods.xrai.max_steps", self.max_steps, self.steps, 256, "steps"))
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


#: XRAI's per-request `steps`: at least 2 (PAIR's points include both ends).
STEPS_INPUT = RequestInput(c.STEPS, "int32", "steps", minimum=2, maximum_field="max_steps")


def xrai_attributions(
    graph: Graph, images: tf.Tensor, target: tf.Tensor, values: tf.Tensor, steps: tf.Tensor, chunk: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """The IG averaged over the two baselines, and the target's mean baseline logit.

    Copy i (of 2 × max(steps)) is on the path from baseline i // max(steps), at point
    k = i mod max(steps): α = k / (m − 1) for an image with m steps, factor ½ (x − b) / m, and
    none for k ≥ m. The path's first point is the baseline itself, so its logit (weight ½)
    gives the mean baseline output without another pass. One loop for both paths, `chunk`
    copies per step: peak memory O(B × chunk); the cost follows the batch's largest `steps`.

    Returns:
        (attributions [B,H,W,C], mean baseline logit of the target [B]).
    """
    longest = tf.reduce_max(steps)
    count = 2 * longest
    m = tf.cast(steps, tf.float32)[None]  # [1, B]

    def points(indices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        valid = indices < count
        at = tf.minimum(indices, count - 1)  # padding copies repeat the last point, weight 0
        which, k = at // longest, at % longest
        k_f = tf.cast(k, tf.float32)[:, None]  # [k, 1]
        on_path = tf.logical_and(valid[:, None], k[:, None] < steps[None])  # [k, B]
        alphas = tf.minimum(k_f / (m - 1.0), 1.0)[:, :, None, None, None]
        base = tf.gather(values, which)  # [k, 1 or B, 1, 1, 1]
        inputs = base + alphas * (images[None] - base)
        factors = tf.where(on_path, 0.5 / m, 0.0)[:, :, None, None, None] * (images[None] - base)
        first = tf.logical_and(valid, tf.equal(k, 0))[:, None]
        logit_weights = tf.where(first, 0.5, tf.zeros_like(on_path, tf.float32))
        return inputs, factors, logit_weights

    return chunked_gradient_sum(graph.head.logits_fn, points, images, target, count, chunk)


class Xrai(PathMethod):
    """XRAI's IG (black and white baselines, averaged) in the graph; regions in the client.

    `saliency` is the pixel-level map of the averaged attributions; the region map is
    computed by the client (`serving_client.xrai.xrai_explanation`) from `attributions`.
    """

    name = "xrai"
    params_type = XraiParams
    request_inputs = (STEPS_INPUT,)

    def explain(
        self,
        graph: Graph,
        images: tf.Tensor,
        target_class: tf.Tensor,
        params: XraiParams,
        request: Mapping[str, tf.Tensor] | None = None,
    ) -> dict[str, tf.Tensor]:
        logits, outputs = graph.clean_pass(images, target_class)
        steps = dict(request or {}).get(c.STEPS, tf.fill([tf.shape(images)[0]], params.steps))
        attributions, baseline_target = xrai_attributions(
            graph,
            images,
            outputs[c.TARGET_CLASS],
            _baseline_values(images, params),
            steps,
            even_chunk(2 * params.steps, graph.internal_batch),
        )
        return self.path_outputs(graph, outputs, logits, attributions, None, baseline_target=baseline_target)

    def reference(
        self,
        copy: EagerReference,
        images: np.ndarray,
        target_class: np.ndarray | None,
        reduction: str,
        params: XraiParams,
        request: Mapping[str, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """Per baseline and per step count, one eager gradient per point, summed in float64."""
        out = clean_reference(copy, images, target_class)
        target = out["target_class"]
        steps = request_values(request, params, self.request_inputs, len(images), images.shape[1:])[c.STEPS]
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
            baseline_logits += 0.5 * copy.logits(base.astype(np.float32))
            for m in np.unique(steps):
                who = np.flatnonzero(steps == m)
                mean_gradient = np.zeros(x[who].shape, np.float64)
                for alpha in np.linspace(0.0, 1.0, int(m)):
                    point = (base[who] + alpha * (x[who] - base[who])).astype(np.float32)
                    mean_gradient += copy.gradient(point, target[who]) / m
                attributions[who] += 0.5 * (x[who] - base[who]) * mean_gradient
        rows = np.arange(len(target))
        delta = out["logits"][rows, target].astype(np.float64) - baseline_logits[rows, target]
        error = np.abs(attributions.sum(axis=(1, 2, 3)) - delta)
        out[c.ATTRIBUTIONS] = attributions.astype(np.float32)
        out[c.APPROXIMATION_ERROR] = np.where(delta != 0, error / np.where(delta != 0, np.abs(delta), 1.0), 0.0)
        out[c.SALIENCY] = numpy_saliency(out[c.ATTRIBUTIONS], reduction)
        return out
