"""Tiny SavedModels for the server tests, shaped like our exports' signature contract.

Each export is a linear classifier over a 4x4x1 image with K=3 classes whose weights depend on
``scale``, so a response tells which export answered, and the input gradient (the saliency) has
an analytic value: the weight row of the target class.

``explain`` carries an optional int32 ``target_class`` input. Keras' ExportArchive cannot record
signature defaults, so after ``write_out`` we patch ``saved_model.pb`` the way our exporter does:
``SignatureDef.defaults["target_class"] = [-1]`` and the Placeholder becomes a
PlaceholderWithDefault fed by a Const holding the same value.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

H, W, C, K = 4, 4, 1, 3


def weights(scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The Dense kernel [H*W*C, K] and bias [K] of the export built with ``scale``."""
    kernel = np.arange(H * W * C * K, dtype=np.float32).reshape(H * W * C, K) / 100.0 * scale
    bias = np.array([0.0, 0.5, -0.5], dtype=np.float32) * scale
    return kernel, bias


def expected_logits(images: np.ndarray, scale: float) -> np.ndarray:
    kernel, bias = weights(scale)
    return images.reshape(len(images), -1) @ kernel + bias


def build_export(version_dir: Path, *, scale: float = 1.0, warmup_batches: int = 1) -> Path:
    """Write one version directory (``.../<base>/<version>``) atomically via a temp sibling."""
    import keras
    import tensorflow as tf

    version_dir = Path(version_dir)
    tmp = version_dir.parent / f".tmp-export-{version_dir.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.parent.mkdir(parents=True, exist_ok=True)

    model = keras.Sequential(
        [keras.Input((H, W, C)), keras.layers.Flatten(), keras.layers.Dense(K)]
    )
    kernel, bias = weights(scale)
    model.layers[-1].set_weights([kernel, bias])

    def forward(images):
        images = tf.debugging.check_numerics(images, "images must be finite (no NaN/Inf)")
        logits = model(images, training=False)
        return logits

    def serve(images):
        logits = forward(images)
        return {
            "logits": logits,
            "probabilities": tf.nn.softmax(logits),
            "predicted_class": tf.cast(tf.argmax(logits, axis=-1), tf.int32),
        }

    def explain(images, target_class):
        images = tf.debugging.check_numerics(images, "images must be finite (no NaN/Inf)")
        with tf.GradientTape() as tape:
            tape.watch(images)
            logits = model(images, training=False)
            predicted = tf.cast(tf.argmax(logits, axis=-1), tf.int32)
            target = tf.broadcast_to(target_class, tf.shape(predicted))
            checks = [
                tf.debugging.assert_greater_equal(
                    target, -1, message="target_class must be -1 (predicted) or in [0, 3)"
                ),
                tf.debugging.assert_less(
                    target, K, message="target_class must be -1 (predicted) or in [0, 3)"
                ),
            ]
            with tf.control_dependencies(checks):
                target = tf.where(target < 0, predicted, target)
            picked = tf.reduce_sum(logits * tf.one_hot(target, K), axis=-1)
        grads = tape.gradient(picked, images)
        mag = tf.reduce_max(tf.abs(grads), axis=-1)
        top = tf.reduce_max(mag, axis=[1, 2], keepdims=True)
        saliency = tf.math.divide_no_nan(mag, top)
        return {
            "logits": logits,
            "probabilities": tf.nn.softmax(logits),
            "predicted_class": predicted,
            "target_class": target,
            "saliency": saliency,
        }

    archive = keras.export.ExportArchive()
    archive.track(model)
    image_spec = tf.TensorSpec([None, H, W, C], tf.float32, name="images")
    archive.add_endpoint("serving_default", serve, input_signature=[image_spec])
    archive.add_endpoint(
        "explain",
        explain,
        input_signature=[image_spec, tf.TensorSpec([None], tf.int32, name="target_class")],
    )
    archive.write_out(str(tmp), verbose=False)
    _record_target_class_default(tmp / "saved_model.pb")
    if warmup_batches:
        write_warmup(tmp, batches=warmup_batches)
    os.replace(tmp, version_dir)
    return version_dir


def _record_target_class_default(pb_path: Path) -> None:
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString(pb_path.read_bytes())
    mg = sm.meta_graphs[0]
    sig = mg.signature_def["explain"]
    default = tf.make_tensor_proto(np.array([-1], np.int32))
    sig.defaults["target_class"].CopyFrom(default)
    node_name = sig.inputs["target_class"].name.split(":")[0]
    node = next(n for n in mg.graph_def.node if n.name == node_name)
    if node.op != "Placeholder":
        raise RuntimeError(f"expected a Placeholder for target_class, got {node.op}")
    const = mg.graph_def.node.add()
    const.name = node_name + "/default_value"
    const.op = "Const"
    const.attr["dtype"].type = default.dtype
    const.attr["value"].tensor.CopyFrom(default)
    node.op = "PlaceholderWithDefault"
    del node.input[:]
    node.input.append(const.name)
    # PlaceholderWithDefault has no `_user_specified_name`-free restrictions; keep dtype/shape.
    pb_path.write_bytes(sm.SerializeToString())


def write_warmup(export_dir: Path, *, batches: int = 1, bad: bool = False) -> Path:
    """Write ``assets.extra/tf_serving_warmup_requests`` (TFRecord of PredictionLog)."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    extra = Path(export_dir) / "assets.extra"
    extra.mkdir(exist_ok=True)
    path = extra / "tf_serving_warmup_requests"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i in range(batches):
            req = predict_pb2.PredictRequest()
            req.model_spec.name = "warmup"
            req.model_spec.signature_name = "explain" if i % 2 else "serving_default"
            shape = [1, H, W, C + (1 if bad else 0)]
            req.inputs["images"].CopyFrom(tf.make_tensor_proto(np.zeros(shape, np.float32)))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=req)
            )
            writer.write(log.SerializeToString())
    return path
