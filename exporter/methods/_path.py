"""What the path-attribution methods share (Integrated Gradients, Blur IG, Guided IG).

Each walks a path from a baseline to the image and serves, beside the map, the signed
`attributions` and Vertex's completeness error `approximation_error`
|Σ attributions − (F(x) − F(baseline))| / |F(x) − F(baseline)|. The error, the outputs and how
verification compares them have this one home; a method module keeps only its path.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from exporter._reference import EagerReference
from exporter.methods.base import Check, Graph, Method, max_abs_diff, numpy_saliency
from serving_client import contract as c

__all__ = ["PathMethod"]


class PathMethod(Method):
    """A path method: serves `attributions` and `approximation_error` beside the map."""

    outputs = c.IG_OUTPUTS

    @staticmethod
    def path_outputs(
        graph: Graph,
        outputs: dict[str, tf.Tensor],
        logits: tf.Tensor,
        attributions: tf.Tensor,
        baseline_logits: tf.Tensor | None,
        *,
        baseline_target: tf.Tensor | None = None,
    ) -> dict[str, tf.Tensor]:
        """In the graph: adds the attributions, the completeness error and the map to `outputs`.

        Args:
            graph: the signature's graph helpers.
            outputs: the clean pass's outputs (with `target_class`), completed in place.
            logits: the clean pass's logits, [B, K].
            attributions: the signed attributions, [B, H, W, C].
            baseline_logits: [K] when one baseline serves the whole batch, else [B, K].
            baseline_target: instead of `baseline_logits`, the target's baseline logit per
                image [B] (for several baselines: their mean, Vertex's baseline output).
        """
        target = outputs[c.TARGET_CLASS]
        if baseline_target is None:
            if baseline_logits is None:
                raise ValueError("path_outputs needs baseline_logits or baseline_target.")
            if baseline_logits.shape.rank == 1:
                baseline_target = tf.gather(baseline_logits, target)
            else:
                baseline_target = tf.gather(baseline_logits, target, axis=1, batch_dims=1)
        delta = tf.gather(logits, target, axis=1, batch_dims=1) - baseline_target
        total = tf.reduce_sum(attributions, axis=[1, 2, 3])
        outputs[c.ATTRIBUTIONS] = attributions
        # divide_no_nan: a target whose logit does not move along the path has error 0, not NaN.
        outputs[c.APPROXIMATION_ERROR] = tf.math.divide_no_nan(tf.abs(total - delta), tf.abs(delta))
        outputs[c.SALIENCY] = graph.saliency(attributions)
        return outputs

    @staticmethod
    def reference_outputs(
        out: dict[str, np.ndarray],
        copy: EagerReference,
        attributions: np.ndarray,
        baseline: np.ndarray | None,
        reduction: str,
        *,
        baseline_target: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """Eagerly: the same three outputs from the reference's attributions, in float64.

        `baseline_target` replaces `baseline`'s logits: the target's baseline logit per image
        (the mean over several baselines).
        """
        target = out["target_class"]
        rows = np.arange(len(target))
        if baseline_target is None:
            if baseline is None:
                raise ValueError("reference_outputs needs baseline or baseline_target.")
            baseline_target = copy.logits(baseline)[rows, target]
        delta = out["logits"][rows, target].astype(np.float64) - baseline_target
        error = np.abs(attributions.sum(axis=(1, 2, 3)) - delta)
        out["attributions"] = attributions.astype(np.float32)
        out["approximation_error"] = np.where(delta != 0, error / np.where(delta != 0, np.abs(delta), 1.0), 0.0)
        out["saliency"] = numpy_saliency(out["attributions"], reduction)
        return out

    def checks(self, served: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray], atol: float) -> list[Check]:
        """The map, the attributions (relative to their largest magnitude) and the error."""
        scale = max(float(np.max(np.abs(reference[c.ATTRIBUTIONS]))), 1e-12)
        return [
            *super().checks(served, reference, atol),
            ("attributions_relative", max_abs_diff(served[c.ATTRIBUTIONS], reference[c.ATTRIBUTIONS]) / scale, atol),
            ("approximation_error", max_abs_diff(served[c.APPROXIMATION_ERROR], reference[c.APPROXIMATION_ERROR]), atol),
        ]

    def figures(self, served: Mapping[str, np.ndarray]) -> dict[str, float]:
        """The largest completeness error served."""
        return {"approximation_error_max": float(np.max(served[c.APPROXIMATION_ERROR]))}
