"""The SignatureDefs exactly as TF Serving reads them from saved_model.pb, and their behaviour."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from tests.exporter.helpers import INPUT_SHAPE, samples

pytestmark = pytest.mark.integration

FLOAT, INT32 = tf.float32.as_datatype_enum, tf.int32.as_datatype_enum


def _signature_defs(path) -> dict:
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((path / "saved_model.pb").read_bytes())
    (meta_graph,) = saved_model.meta_graphs
    assert list(meta_graph.meta_info_def.tags) == ["serve"]
    return dict(meta_graph.signature_def)


def _spec(infos) -> dict:
    # None: unknown rank (target_class is [batch] or [batch, K]; the per-target outputs follow it).
    return {
        alias: (info.dtype, None if info.tensor_shape.unknown_rank else [d.size for d in info.tensor_shape.dim])
        for alias, info in infos.items()
    }


def test_signature_names_dtypes_and_shapes_match_the_contract(fused_export):
    sigs = _signature_defs(fused_export[1])
    assert {"serving_default", "explain"} <= set(sigs)
    h, w, ch = INPUT_SHAPE
    assert _spec(sigs["serving_default"].inputs) == {"images": (FLOAT, [-1, h, w, ch])}
    assert _spec(sigs["serving_default"].outputs) == {
        "logits": (FLOAT, [-1, 4]),
        "probabilities": (FLOAT, [-1, 4]),
        "predicted_class": (INT32, [-1]),
    }
    assert _spec(sigs["explain"].inputs) == {"images": (FLOAT, [-1, h, w, ch]), "target_class": (INT32, None)}
    assert _spec(sigs["explain"].outputs) == {
        "logits": (FLOAT, [-1, 4]),
        "probabilities": (FLOAT, [-1, 4]),
        "predicted_class": (INT32, [-1]),
        "target_class": (INT32, None),
        "saliency": (FLOAT, None),
    }
    for sig in sigs.values():
        assert sig.method_name in ("tensorflow/serving/predict", "")


def test_explain_records_target_class_default_minus_one(fused_export):
    sig = _signature_defs(fused_export[1])["explain"]
    assert list(sig.defaults) == ["target_class"]
    np.testing.assert_array_equal(tf.make_ndarray(sig.defaults["target_class"]), [-1])


@pytest.mark.parametrize("batch", [1, 7])
def test_both_signatures_serve_any_batch_size(fused_saved, batch):
    x = samples(batch)
    predict = fused_saved.run("serving_default", {"images": x})
    explain = fused_saved.run("explain", {"images": x})
    assert predict["logits"].shape == (batch, 4) and predict["predicted_class"].shape == (batch,)
    assert explain["saliency"].shape == (batch, *INPUT_SHAPE[:2])
    np.testing.assert_allclose(explain["logits"], predict["logits"], atol=1e-6)
    np.testing.assert_array_equal(explain["target_class"], predict["predicted_class"])


def test_target_class_of_length_one_is_broadcast(fused_saved):
    x = samples(3)
    out = fused_saved.run("explain", {"images": x, "target_class": np.array([2], np.int32)})
    np.testing.assert_array_equal(out["target_class"], [2, 2, 2])


def test_target_minus_one_means_predicted_class_per_example(fused_saved):
    x = samples(3)
    out = fused_saved.run("explain", {"images": x, "target_class": np.array([-1, 1, -1], np.int32)})
    predicted = out["predicted_class"]
    np.testing.assert_array_equal(out["target_class"], [predicted[0], 1, predicted[2]])


# -2..-4 are valid since several classes per call (-j: the j-th most probable class).
@pytest.mark.parametrize("bad", [[4], [-5], [0, 9, 1]])
def test_out_of_range_target_class_is_an_error_naming_the_range(fused_saved, bad):
    x = samples(3)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"target_class out of range: expected a class 0\.\.3, or -1 .* down to -4"):
        fused_saved.run("explain", {"images": x, "target_class": np.array(bad, np.int32)})


def test_target_class_length_must_be_one_or_batch(fused_saved):
    with pytest.raises(tf.errors.InvalidArgumentError, match="length 1 or the batch size"):
        fused_saved.run("explain", {"images": samples(3), "target_class": np.array([0, 1], np.int32)})


@pytest.mark.parametrize("signature", ["serving_default", "explain"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_images_are_rejected(fused_saved, signature, value):
    x = samples(2)
    x[1, 0, 0, 0] = value
    with pytest.raises(tf.errors.InvalidArgumentError, match="images must be finite"):
        fused_saved.run(signature, {"images": x})


def test_saliency_is_in_unit_range_with_a_max_of_one(fused_saved):
    out = fused_saved.run("explain", {"images": samples(5)})
    maps = out["saliency"]
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    np.testing.assert_allclose(maps.max(axis=(1, 2)), 1.0, atol=1e-6)
    np.testing.assert_allclose(maps.min(axis=(1, 2)), 0.0, atol=1e-6)


def test_tf2_loader_serves_the_same_signatures(fused_export, fused_saved):
    loaded = tf.saved_model.load(str(fused_export[1]))
    x = samples(2)
    tf2 = loaded.signatures["explain"](images=tf.constant(x), target_class=tf.constant([1], tf.int32))
    tf1 = fused_saved.run("explain", {"images": x, "target_class": np.array([1], np.int32)})
    np.testing.assert_allclose(tf2["saliency"].numpy(), tf1["saliency"], atol=1e-6)


def test_class_names_are_written_as_an_asset(fused_export):
    assert (fused_export[1] / "assets" / "class_names.txt").read_text().split() == ["a", "b", "c", "d"]
