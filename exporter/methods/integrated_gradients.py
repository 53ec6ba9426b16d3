"""Integrated Gradients (Sundararajan et al. 2017): the path integral from a baseline.

Per request (optional signature inputs, one value per image, defaults from this table):
`steps` (m), `samples` and `noise` (SmoothGrad inside IG, Vertex's `smooth_grad_config`:
the mean of the IG attributions of `samples` noisy copies x + N(0, σ²) of the image; the
default samples = 1, noise = 0 is plain IG) and `baseline` (N baselines per image, in the
model's input space, whose IG attributions are averaged; N = 0 is the constant `baseline`).

Completeness (Vertex's `approximation_error` for several baselines): the baseline output is
the mean of the baselines' logits, so the error is |Σ attributions − (F(x) − mean_k F(x'_k))|
/ |F(x) − mean_k F(x'_k)|, with F(x) of the clean image (with noise, the error includes the
noise's effect on the logit, as Vertex's does).

Cost: N' × max(samples) × (max(steps) + 1) gradient evaluations of the batch (N' = max(N, 1)),
`internal_batch` copies at a time (the static chunk is chosen so the export's defaults waste
no evaluations); images with smaller values in the batch get zero weights beyond their own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from exporter._attribution import chunked_gradient_sum, even_chunk
from exporter._config_loader import check_int, check_number, check_range, set_field
from exporter._errors import ConfigError
from exporter._reference import EagerReference
from exporter.methods._path import PathMethod
from exporter.methods.base import BASELINES, Graph, RequestInput, clean_reference
from serving_client import contract as c

__all__ = ["IntegratedGradients", "IntegratedGradientsParams", "default_maximum"]


def default_maximum(value: int, floor: int) -> int:
    """The default of a `max_*` parameter: 4 × the configured value, at least `floor`."""
    return max(4 * value, floor)


def check_maximum(key: str, maximum: int | None, value: int, floor: int, value_key: str) -> int:
    """A `max_*` parameter, resolved (None → `default_maximum`) and at least `value`."""
    resolved = default_maximum(value, floor) if maximum is None else check_int(key, maximum, minimum=1)
    if resolved < value:
        raise ConfigError(f"{key} must be at least {value_key} ({value}); received {resolved}.")
    return resolved


@dataclasses.dataclass(frozen=True)
class IntegratedGradientsParams:
    """`[methods.integrated_gradients]`: the defaults of the per-request inputs, and their bounds.

    Attributes:
        steps: m, the integration intervals (trapezoidal rule, m + 1 gradient evaluations).
        baseline: The constant baseline image value (0 = black), used when a request sends
            no `baseline` images.
        max_steps: The largest `steps` a request may ask for (default 4 × steps, at least 256).
        samples: Noisy copies whose IG attributions are averaged (1 = plain IG).
        noise: σ of the copies' noise as a fraction of the input range (0 = plain IG).
        max_samples: The largest `samples` a request may ask for (default 4 × samples, at
            least 64).
        max_baselines: The largest number N of `baseline` images per image of a request.
        input_range: (low, high) of the model's inputs; σ = noise × (high − low).
        seed: Seed of the stateless noise (copy j's noise is `stateless_normal(seed=[seed, j])`).
    """

    steps: int = 64
    baseline: float = 0.0
    max_steps: int | None = None
    samples: int = 1
    noise: float = 0.0
    max_samples: int | None = None
    max_baselines: int = 16
    input_range: tuple[float, float] = (0.0, 1.0)
    seed: int = 0

    def __post_init__(self) -> None:
        table = "methods.integrated_gradients"
        check_int(f"{table}.steps", self.steps, minimum=1)
        set_field(self, "baseline", check_number(f"{table}.baseline", self.baseline))
        set_field(self, "max_steps", check_maximum(f"{table}.max_steps", self.max_steps, self.steps, 256, "steps"))
        check_int(f"{table}.samples", self.samples, minimum=1)
        set_field(self, "noise", check_number(f"{table}.noise", self.noise, minimum=0))
        set_field(
            self, "max_samples", check_maximum(f"{table}.max_samples", self.max_samples, self.samples, 64, "samples")
        )
        check_int(f"{table}.max_baselines", self.max_baselines, minimum=1)
        set_field(self, "input_range", check_range(f"{table}.input_range", self.input_range))
        check_int(f"{table}.seed", self.seed, minimum=0)

    @property
    def scale(self) -> float:
        """high − low of the input range (σ = noise × scale)."""
        low, high = self.input_range
        return high - low


#: The per-request inputs of IG-family methods and SmoothGrad (their params' field names).
STEPS_INPUT = RequestInput(c.STEPS, "int32", "steps", minimum=1, maximum_field="max_steps")
SAMPLES_INPUT = RequestInput(c.SAMPLES, "int32", "samples", minimum=1, maximum_field="max_samples")
NOISE_INPUT = RequestInput(c.NOISE, "float32", "noise", minimum=0)
BASELINE_INPUT = RequestInput(c.BASELINE, "float32", "baseline", kind=BASELINES, maximum_field="max_baselines")


def noise_images(seed: int, indices: tf.Tensor, pixel_shape: tf.Tensor) -> tf.Tensor:
    """[k,H,W,C]: copy j's standard normal noise, `stateless_normal(seed=[seed, j])`."""
    return tf.map_fn(
        lambda i: tf.random.stateless_normal(pixel_shape, seed=tf.stack([seed, i])),
        indices,
        fn_output_signature=tf.float32,
    )


def numpy_noise(seed: int, index: int, pixel_shape: tuple[int, ...]) -> np.ndarray:
    """Copy `index`'s noise, eagerly (the same stateless op, so the same numbers)."""
    return tf.random.stateless_normal(pixel_shape, seed=[seed, index]).numpy()


def request_values(
    request: Mapping[str, np.ndarray] | None, params: object, inputs: tuple[RequestInput, ...], batch: int,
    input_shape: tuple[int, ...],
) -> dict[str, np.ndarray]:
    """Per-image values of each request input (the params' defaults for those not given)."""
    given = dict(request or {})
    out = {}
    for spec in inputs:
        value = np.asarray(given[spec.alias]) if spec.alias in given else spec.default(params, tuple(input_shape))  # type: ignore[arg-type]
        out[spec.alias] = np.broadcast_to(value, (batch, *value.shape[1:]))
    return out


class IntegratedGradients(PathMethod):
    """Σ over the path of trapezoid-weighted gradients × (x − x'); also serves the signed
    attributions and the completeness error |Σ attributions − Δlogit| / |Δlogit|."""

    name = "integrated_gradients"
    params_type = IntegratedGradientsParams
    request_inputs = (STEPS_INPUT, SAMPLES_INPUT, NOISE_INPUT, BASELINE_INPUT)

    def explain(
        self,
        graph: Graph,
        images: tf.Tensor,
        target_class: tf.Tensor,
        params: IntegratedGradientsParams,
        request: Mapping[str, tf.Tensor] | None = None,
    ) -> dict[str, tf.Tensor]:
        logits, outputs = graph.clean_pass(images, target_class)
        target = outputs[c.TARGET_CLASS]
        request = dict(request or {})
        batch = tf.shape(images)[0]
        steps = request.get(c.STEPS, tf.fill([batch], params.steps))
        samples = request.get(c.SAMPLES, tf.fill([batch], params.samples))
        noise = request.get(c.NOISE, tf.fill([batch], tf.constant(params.noise, tf.float32)))
        given = request.get(c.BASELINE, tf.zeros(tf.concat([[batch, 0], tf.shape(images)[1:]], axis=0)))
        # The constant baseline first; a request with N > 0 baselines skips it (offset 1).
        constant = tf.fill(tf.shape(images), tf.constant(params.baseline, tf.float32))[:, None]
        baselines = tf.concat([constant, given], axis=1)
        count_given = tf.shape(given)[1]
        offset = tf.minimum(count_given, 1)
        used = tf.maximum(count_given, 1)
        max_steps = tf.reduce_max(steps)
        max_samples = tf.reduce_max(samples)
        points = max_steps + 1
        m = tf.cast(steps, tf.float32)[None]  # [1,B]
        sigma = (noise * params.scale)[None, :, None, None, None]
        per_baseline = tf.cast(used, tf.float32)
        pixel_shape = tf.shape(images)[1:]

        def path(indices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
            count = used * max_samples * points
            valid = (indices < count)[:, None]
            i = indices % points
            j = (indices // points) % max_samples
            k = tf.minimum(indices // (points * max_samples), used - 1) + offset
            i_f = tf.cast(i, tf.float32)[:, None]  # [k,1]
            on_path = tf.logical_and(valid, i[:, None] <= steps[None])
            in_samples = j[:, None] < samples[None]
            end = tf.logical_or(tf.equal(i_f, 0.0), tf.equal(i_f, m))
            trapezoid = tf.where(end, 0.5, 1.0) / m
            weight = tf.where(
                tf.logical_and(on_path, in_samples),
                trapezoid / tf.cast(samples, tf.float32)[None] / per_baseline,
                0.0,
            )
            noisy = images[None] + sigma * noise_images(params.seed, j, pixel_shape)[:, None]
            start = tf.transpose(tf.gather(baselines, k, axis=1), [1, 0, 2, 3, 4])
            alpha = tf.minimum(i_f / m, 1.0)[:, :, None, None, None]
            inputs = start + alpha * (noisy - start)
            factors = weight[:, :, None, None, None] * (noisy - start)
            # The path's first point is the baseline itself: its logit, once per baseline.
            first = tf.logical_and(valid, tf.logical_and(tf.equal(i, 0), tf.equal(j, 0))[:, None])
            logit_weights = tf.where(first, 1.0 / per_baseline, tf.zeros_like(weight))
            return inputs, factors, logit_weights

        attributions, baseline_target = chunked_gradient_sum(
            graph.head.logits_fn,
            path,
            images,
            target,
            used * max_samples * points,
            even_chunk(params.samples * (params.steps + 1), graph.internal_batch),
        )
        return self.path_outputs(graph, outputs, logits, attributions, None, baseline_target=baseline_target)

    def reference(
        self,
        copy: EagerReference,
        images: np.ndarray,
        target_class: np.ndarray | None,
        reduction: str,
        params: IntegratedGradientsParams,
        request: Mapping[str, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """Per image, for each baseline and noisy copy, the trapezoidal rule over its own m + 1
        points; one eager gradient per point, over the images that have that point; the mean."""
        out = clean_reference(copy, images, target_class)
        targets = out["target_class"]
        batch = len(images)
        values = request_values(request, params, self.request_inputs, batch, images.shape[1:])
        steps, samples = values[c.STEPS].astype(int), values[c.SAMPLES].astype(int)
        sigma = values[c.NOISE].astype(np.float32) * np.float32(params.scale)
        given = values[c.BASELINE]
        if given.shape[1]:
            bases = [given[:, k] for k in range(given.shape[1])]
        else:
            bases = [np.full_like(images, params.baseline)]
        rows = np.arange(batch)
        attributions = np.zeros(images.shape, np.float64)
        baseline_target = np.mean([copy.logits(base.astype(np.float32))[rows, targets] for base in bases], axis=0)
        for base in bases:
            for j in range(int(samples.max())):
                noise = numpy_noise(params.seed, j, images.shape[1:])
                noisy = images + sigma[:, None, None, None] * noise[None]
                for i in range(int(steps.max()) + 1):
                    who = np.flatnonzero((i <= steps) & (j < samples))
                    if who.size == 0:
                        continue
                    m = steps[who][:, None, None, None]
                    weight = np.where((i == 0) | (i == m), 0.5, 1.0) / m / samples[who][:, None, None, None]
                    point = (base[who] + (i / m) * (noisy[who] - base[who])).astype(np.float32)
                    gradient = copy.gradient(point, targets[who])
                    attributions[who] += weight * (noisy[who] - base[who]) * gradient / len(bases)
        return self.reference_outputs(out, copy, attributions, None, reduction, baseline_target=baseline_target)
