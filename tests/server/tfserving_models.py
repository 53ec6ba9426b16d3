"""The two SavedModels TF Serving's ``predict_util_test.cc`` runs against, rebuilt as TF1 graphs.

- ``half_plus_two`` (tensorflow/cc/saved_model/testdata/half_plus_two): ``serving_default``
  x → y = 0.5·x + 2 (predict), ``regress_x2_to_y3`` inputs → outputs = 0.5·x2 + 3 (regress),
  ``classify_x2_to_y3`` inputs → scores = 0.5·x2 + 3 (classify). One more signature,
  ``unsupported_method``, is x → y under the method name ``not/supported/method``, for
  ``PredictImplTest.MethodNameCheck``.
- ``saved_model_counter`` (tensorflow_serving/servables/tensorflow/testdata): a float variable
  with ``get_counter``, ``incr_counter``, ``reset_counter`` (no inputs) and ``incr_counter_by``
  (input ``delta``), each answering ``output``.

The inputs have unknown shape: TF Serving does not check request shapes against the
signature, this server does, and the C++ tests feed scalars.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def _save(version_dir: Path, build) -> Path:
    import tensorflow as tf

    version_dir = Path(version_dir)
    tmp = version_dir.parent / f".tmp-export-{version_dir.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
        signatures = build(tf)
        sess.run(tf.compat.v1.global_variables_initializer())
        builder = tf.compat.v1.saved_model.Builder(str(tmp))
        builder.add_meta_graph_and_variables(sess, ["serve"], signature_def_map=signatures)
        builder.save()
    os.replace(tmp, version_dir)
    return version_dir


def _sig(tf, inputs: dict, outputs: dict, method: str):
    info = tf.compat.v1.saved_model.utils.build_tensor_info
    return tf.compat.v1.saved_model.signature_def_utils.build_signature_def(
        inputs={k: info(v) for k, v in inputs.items()},
        outputs={k: info(v) for k, v in outputs.items()},
        method_name=method,
    )


def build_half_plus_two(version_dir: Path) -> Path:
    """Write half_plus_two as version directory ``version_dir``."""

    def build(tf):
        v1 = tf.compat.v1
        a = v1.Variable(0.5, name="a")
        b = v1.Variable(2.0, name="b")
        c = v1.Variable(3.0, name="c")
        x = v1.placeholder(tf.float32, shape=None, name="x")
        x2 = v1.placeholder(tf.float32, shape=None, name="x2")
        y = tf.add(a * x, b, name="y")
        y3 = tf.add(a * x2, c, name="y3")
        return {
            "serving_default": _sig(tf, {"x": x}, {"y": y}, "tensorflow/serving/predict"),
            "regress_x2_to_y3": _sig(tf, {"inputs": x2}, {"outputs": y3}, "tensorflow/serving/regress"),
            "classify_x2_to_y3": _sig(tf, {"inputs": x2}, {"scores": y3}, "tensorflow/serving/classify"),
            "unsupported_method": _sig(tf, {"x": x}, {"y": y}, "not/supported/method"),
        }

    return _save(version_dir, build)


def build_counter(version_dir: Path) -> Path:
    """Write saved_model_counter as version directory ``version_dir``."""

    def build(tf):
        v1 = tf.compat.v1
        counter = v1.Variable(0.0, name="counter", use_resource=False)
        delta = v1.placeholder(tf.float32, shape=None, name="delta")
        return {
            "get_counter": _sig(tf, {}, {"output": tf.identity(counter)}, "tensorflow/serving/predict"),
            "incr_counter": _sig(tf, {}, {"output": v1.assign_add(counter, 1.0)}, "tensorflow/serving/predict"),
            "reset_counter": _sig(tf, {}, {"output": v1.assign(counter, 0.0)}, "tensorflow/serving/predict"),
            "incr_counter_by": _sig(tf, {"delta": delta}, {"output": v1.assign_add(counter, delta)}, "tensorflow/serving/predict"),
        }

    return _save(version_dir, build)
