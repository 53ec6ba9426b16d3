"""Several classes per call: `target_class` `[batch, K]` on every explanation signature.

The served `[B, K]` answer is compared with K separate rank-1 answers of the same export
(every registered method), vanilla's also with an eager GradientTape per class written
here; `−j` with NumPy's argsort of the logits; refusals (rank, range, B·K over the limit)
are InvalidArgumentError naming what was received.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from exporter import ExportConfig, Tf1SavedModel
from exporter import methods as registry
from exporter._config import LimitsConfig, MethodsConfig
from exporter.methods.xrai import XraiParams
from serving_client import contract as c
from tests.exporter.helpers import export, logits_model, samples

pytestmark = pytest.mark.integration

MAX_EXPLAIN = 9  # rows of `explain`: B·K above it is refused


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = logits_model()
    methods = MethodsConfig(
        enabled=registry.names(),
        internal_batch=4,
        params=[
            registry.IntegratedGradientsParams(steps=4),
            registry.SmoothGradParams(samples=2),
            registry.BlurIntegratedGradientsParams(steps=3),
            registry.GuidedIntegratedGradientsParams(steps=3),
            XraiParams(steps=3),
        ],
    )
    limits = LimitsConfig(max_batch={c.EXPLAIN: MAX_EXPLAIN})
    path = export(model, tmp_path_factory.mktemp("classes"), ExportConfig(name="k", methods=methods, limits=limits))
    with Tf1SavedModel(path) as saved:
        yield model, saved


def _per_target(alias: str) -> bool:
    return alias not in c.PREDICT_OUTPUTS


@pytest.mark.parametrize("method", registry.names())
def test_class_axis_equals_one_call_per_class(exported, method):
    _, saved = exported
    signature = registry.get(method).signature
    x = samples(3)
    classes = np.array([[2, -2, 0], [1, -2, 3], [-1, 0, -3]], np.int32)
    multi = saved.run(signature, {c.IMAGES: x, c.TARGET_CLASS: classes})
    assert multi[c.SALIENCY].shape == (3, 3, *x.shape[1:3])
    for k in range(classes.shape[1]):
        one = saved.run(signature, {c.IMAGES: x, c.TARGET_CLASS: classes[:, k]})
        assert set(one) == set(multi)
        for alias, value in one.items():
            served = multi[alias][:, k] if _per_target(alias) else multi[alias]
            assert served.shape == value.shape, alias
            np.testing.assert_allclose(served, value, rtol=0, atol=1e-6, err_msg=f"{method} {alias} class {k}")


def test_vanilla_class_axis_against_eager_tape(exported):
    model, saved = exported
    x = samples(2, seed=3)
    classes = np.array([[0, 3], [2, 1]], np.int32)
    out = saved.run(c.EXPLAIN, {c.IMAGES: x, c.TARGET_CLASS: classes})
    images = tf.constant(x)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(images)
        logits = model(images, training=False)
        picked = [tf.gather(logits, classes[:, k], axis=1, batch_dims=1) for k in range(2)]
    for k in range(2):
        gradient = np.abs(tape.gradient(picked[k], images).numpy()).max(axis=-1)  # max_abs reduction
        low = gradient.min(axis=(1, 2), keepdims=True)
        high = gradient.max(axis=(1, 2), keepdims=True)
        np.testing.assert_allclose(out[c.SALIENCY][:, k], (gradient - low) / (high - low), atol=1e-6)
    np.testing.assert_array_equal(out[c.TARGET_CLASS], classes)
    np.testing.assert_allclose(out[c.LOGITS], logits.numpy(), atol=1e-5)


def test_negative_values_rank_the_classes_like_numpy_argsort(exported):
    _, saved = exported
    x = samples(2, seed=7)
    logits = saved.run(c.SERVING_DEFAULT, {c.IMAGES: x})[c.LOGITS]
    out = saved.run(c.EXPLAIN, {c.IMAGES: x, c.TARGET_CLASS: np.array([[-1, -2, -3, -4]], np.int32)})
    np.testing.assert_array_equal(out[c.TARGET_CLASS], np.argsort(-logits, axis=1, kind="stable"))
    # Rank 1 too: -2 is each image's runner-up.
    one = saved.run(c.EXPLAIN, {c.IMAGES: x, c.TARGET_CLASS: np.array([-2], np.int32)})
    np.testing.assert_array_equal(one[c.TARGET_CLASS], np.argsort(-logits, axis=1, kind="stable")[:, 1])


@pytest.mark.parametrize(
    ("target", "words"),
    [
        (np.array([[0, 4]], np.int32), "target_class out of range"),
        (np.array([[-5]], np.int32), "-1 (the predicted class) down to -4"),
        (np.zeros((2, 1, 1), np.int32), "received rank"),
        (np.zeros((3, 2), np.int32), "length 1 or the batch size"),
        (np.zeros((2, 0), np.int32), "K >= 1"),
    ],
)
def test_bad_targets_are_refused(exported, target, words):
    _, saved = exported
    with pytest.raises(tf.errors.InvalidArgumentError, match=words.replace("(", r"\(").replace(")", r"\)")):
        saved.run(c.EXPLAIN, {c.IMAGES: samples(2), c.TARGET_CLASS: target})


def test_rows_over_the_batch_limit_are_refused_naming_b_k_and_the_maximum(exported):
    _, saved = exported
    x = samples(3)
    # 3 × 3 = 9 rows fit; 3 × 4 = 12 do not, though 3 images alone do.
    saved.run(c.EXPLAIN, {c.IMAGES: x, c.TARGET_CLASS: np.array([[0, 1, 2]], np.int32)})
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=rf"batch of 3 images × 4 classes = 12 rows exceeds the maximum batch of explain: {MAX_EXPLAIN}",
    ):
        saved.run(c.EXPLAIN, {c.IMAGES: x, c.TARGET_CLASS: np.array([[0, 1, 2, 3]], np.int32)})


def test_signature_declares_target_class_of_unknown_rank(exported):
    _, saved = exported
    for method in registry.names():
        signature = saved.signature_defs[registry.get(method).signature]
        assert signature.inputs[c.TARGET_CLASS].tensor_shape.unknown_rank
        np.testing.assert_array_equal(tf.make_ndarray(signature.defaults[c.TARGET_CLASS]), [-1])
