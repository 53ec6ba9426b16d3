"""Grouped convolutions export without XLA, so stock TF Serving (XLA off by default) runs them.

Keras 3 runs a grouped `Conv2D` as an XLA-compiled function; `exporter._grouped_conv` swaps
in `DepthwiseConv2dNative` (one input channel per group) or per-group convolutions while the
signatures trace. The references here are Keras's own grouped convolution, run eagerly (its
XLA path), and an eager GradientTape over the Keras model.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src.backend.tensorflow import nn as backend_nn

import exporter._signatures as signatures_module
from exporter import ExportConfig, SaliencyExporter, Tf1SavedModel, VerificationError
from exporter._cpp_loader import load_saved_model as cpp_load
from exporter._grouped_conv import xla_free_grouped_convolutions
from exporter._reference import numpy_saliency
from exporter._verify import check_xla_free
from model_server._xla import XLA_FLAG, xla_compiled_functions

RNG = np.random.default_rng(0)


def _forward_and_input_gradient(layer: keras.layers.Layer, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    images = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(images)
        out = layer(images)
        # A fixed random cotangent, so every output element's gradient counts.
        weights = tf.constant(np.random.default_rng(1).normal(size=out.shape).astype(np.float32))
        loss = tf.reduce_sum(out * weights)
    return out.numpy(), tape.gradient(loss, images).numpy()


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


# (rank, channels, depth multiplier or filters per group, groups, strides, padding, dilation)
DEPTHWISE_CASES = [
    (2, 4, 1, 4, 1, "same", 1),  # ConvNeXt's case: groups = C, one output channel per group
    (2, 3, 2, 3, 1, "valid", 1),
    (2, 6, 3, 6, 2, "same", 1),
    (2, 5, 1, 5, 3, "valid", 1),
    (2, 4, 2, 4, 1, "same", 2),
    (2, 2, 4, 2, 1, "valid", 3),
    (1, 4, 2, 4, 2, "same", 1),  # Conv1D(groups=C) goes through the same backend conv
]
SPLIT_CASES = [
    (2, 8, 3, 2, 1, "same", 1),  # 4 input channels per group
    (2, 6, 2, 3, 2, "valid", 1),
    (2, 6, 1, 3, 1, "same", 2),
]


@pytest.mark.parametrize(("rank", "channels", "per_group", "groups", "strides", "padding", "dilation"),
                         DEPTHWISE_CASES + SPLIT_CASES)
def test_rewrite_equals_keras_grouped_conv_forward_and_input_gradient(
    rank, channels, per_group, groups, strides, padding, dilation
):
    conv = keras.layers.Conv2D if rank == 2 else keras.layers.Conv1D
    layer = conv(groups * per_group, 3, strides=strides, padding=padding, dilation_rate=dilation, groups=groups)
    x = RNG.normal(size=(2, *([11] * rank), channels)).astype(np.float32)
    keras_out, keras_grad = _forward_and_input_gradient(layer, x)  # Keras's XLA grouped conv
    with xla_free_grouped_convolutions():
        out, grad = _forward_and_input_gradient(layer, x)
    assert out.shape == keras_out.shape
    assert _relative(out, keras_out) <= 1e-5
    assert _relative(grad, keras_grad) <= 1e-5


@pytest.mark.parametrize(("groups", "per_group", "expected_op"), [(4, 1, "DepthwiseConv2dNative"), (2, 2, "Conv2D")])
def test_rewrite_traces_to_plain_tf_convolutions_without_xla(groups, per_group, expected_op):
    layer = keras.layers.Conv2D(4, 3, groups=groups)
    layer.build((None, 6, 6, groups * per_group))

    def forward(images):
        with xla_free_grouped_convolutions():
            return layer(images)

    spec = tf.TensorSpec([None, 6, 6, groups * per_group], tf.float32)
    graph_def = tf.function(forward).get_concrete_function(spec).graph.as_graph_def()
    assert xla_compiled_functions(graph_def) == []
    assert expected_op in {node.op for node in graph_def.node}
    # Keras's own path, for contrast: the same layer traced without the context needs XLA.
    keras_graph = tf.function(lambda images: layer(images)).get_concrete_function(spec).graph.as_graph_def()
    assert any(item.startswith("function ") for item in xla_compiled_functions(keras_graph))


def test_context_restores_keras_conv_even_after_an_error():
    keras_conv = backend_nn.conv
    with pytest.raises(RuntimeError, match="inside"):
        with xla_free_grouped_convolutions(), xla_free_grouped_convolutions():
            assert backend_nn.conv is not keras_conv
            raise RuntimeError("inside")
    assert backend_nn.conv is keras_conv


def _jit_compiled_saved_model(path: Path) -> Path:
    """A SavedModel whose serving signature calls a jit_compile=True function: y = 2x + 1."""

    class Module(tf.Module):
        @tf.function(jit_compile=True)
        def compiled(self, x):
            return x * 2.0

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def serve(self, x):
            return {"y": self.compiled(x) + 1.0}

    module = Module()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def test_xla_check_refuses_a_saved_model_with_a_jit_compiled_function(tmp_path):
    path = _jit_compiled_saved_model(tmp_path / "jit")
    with Tf1SavedModel(path) as saved:
        found = xla_compiled_functions(saved.meta_graph.graph_def)
        np.testing.assert_allclose(saved.run("serving_default", {"x": np.array([1.0, 2.0], np.float32)})["y"], [3.0, 5.0])
    assert found and found[0].startswith("function ") and "compiled" in found[0]
    with pytest.raises(VerificationError, match=f"needs XLA: function .*compiled.*{XLA_FLAG}=false"):
        check_xla_free(path)


def _convnext_like() -> keras.Model:
    """ConvNeXt's block in miniature: stem, 3×3 depthwise Conv2D(groups=C), LayerNorm, MLP."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(6, 2, strides=2)(inputs)
    block = keras.layers.Conv2D(6, 3, padding="same", groups=6)(h)
    block = keras.layers.LayerNormalization(epsilon=1e-6)(block)
    block = keras.layers.Dense(12, activation="gelu")(block)
    block = keras.layers.Dense(6)(block)
    h = keras.layers.Add()([h, block])
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(4)(h))  # logits out


@pytest.fixture(scope="module")
def convnext_export(tmp_path_factory) -> tuple[keras.Model, Path]:
    model = _convnext_like()
    base = tmp_path_factory.mktemp("convnext_like")
    return model, SaliencyExporter(model, ExportConfig(name="convnext_like")).write(base).path


@pytest.mark.integration
def test_grouped_conv_model_exports_xla_free_and_matches_eager_keras(convnext_export):
    model, path = convnext_export
    x = np.random.default_rng(5).random((3, 8, 8, 3), dtype=np.float32)
    images = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(images)
        logits = model(images)  # eager: Keras's own (XLA) grouped convolution
        predicted = tf.argmax(logits, axis=-1)
        selected = tf.gather(logits, predicted, axis=1, batch_dims=1)
    expected_saliency = numpy_saliency(tape.gradient(selected, images).numpy(), "max_abs")

    with Tf1SavedModel(path) as saved:
        assert xla_compiled_functions(saved.meta_graph.graph_def) == []
        ops = {n.op for f in saved.meta_graph.graph_def.library.function for n in f.node_def}
        assert "DepthwiseConv2dNative" in ops
        predict = saved.run("serving_default", {"images": x})
        explain = saved.run("explain", {"images": x})
    np.testing.assert_allclose(predict["logits"], logits.numpy(), atol=1e-5)
    np.testing.assert_array_equal(explain["target_class"], predicted.numpy())
    np.testing.assert_allclose(explain["saliency"], expected_saliency, atol=1e-4)

    with cpp_load(path) as cpp:
        cpp_predict = cpp.run("serving_default", {"images": x})
        cpp_explain = cpp.run("explain", {"images": x})
    np.testing.assert_allclose(cpp_predict["logits"], logits.numpy(), atol=1e-5)
    np.testing.assert_allclose(cpp_explain["saliency"], expected_saliency, atol=1e-4)


@pytest.mark.integration
def test_export_still_needing_xla_is_refused_and_not_published(tmp_path, monkeypatch):
    # Trace as before the rewrite (Keras's XLA grouped convolution): verification must refuse.
    monkeypatch.setattr(signatures_module, "xla_free_grouped_convolutions", contextlib.nullcontext)
    with pytest.raises(VerificationError, match=f"needs XLA: function .*conv_xla.*{XLA_FLAG}=false"):
        SaliencyExporter(_convnext_like(), ExportConfig(name="xla")).write(tmp_path)
    assert not (tmp_path / "1").exists()


_TF_SERVING_DEFAULT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import numpy as np
    from exporter._cpp_loader_child import CApi, RequestError, _Session
    api = CApi(Path(sys.argv[1]))
    disable = getattr(api._lib, "_ZN10tensorflow21DisableXlaCompilationEv", None)
    if disable is None:
        print("no DisableXlaCompilation")
        sys.exit(0)
    disable()  # what TF Serving's main() does without --xla_cpu_compilation_enabled
    for path, (feed, fetch, shape) in json.loads(sys.argv[2]).items():
        session = _Session(api, path, ["serve"], None)
        try:
            session.run([(feed, np.zeros(shape, np.float32))], [fetch])
            print("ran")
        except RequestError as error:
            print(f"refused {error.code}: " + str(error).replace(chr(10), " "))
    """
)


@pytest.mark.integration
def test_tf_serving_default_runs_the_rewritten_export_and_fails_a_jit_compiled_graph(convnext_export, tmp_path):
    """What TF Serving does without --xla_cpu_compilation_enabled, through TF's C API.

    `tensorflow::DisableXlaCompilation()` (what TF Serving's main() calls) in a process that
    loads only libtensorflow_cc, then TF_LoadSessionFromSavedModel and one run of each.
    """
    from exporter._cpp_loader import installed_library

    library = installed_library()
    _, rewritten = convnext_export
    jit = _jit_compiled_saved_model(tmp_path / "jit")
    runs = {}
    for path, feed, fetch, shape in ((rewritten, "images", "logits", [1, 8, 8, 3]), (jit, "x", "y", [2])):
        with Tf1SavedModel(path) as saved:
            sig = saved.signature_defs["serving_default"]
            runs[str(path)] = [sig.inputs[feed].name, sig.outputs[fetch].name, shape]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(Path(__file__).parents[2])}
    done = subprocess.run(  # noqa: S603 - this test's script, fixed arguments
        [sys.executable, "-c", _TF_SERVING_DEFAULT, str(library), json.dumps(runs)],
        capture_output=True, text=True, env=env, timeout=300, check=True,
    )  # fmt: skip
    lines = done.stdout.strip().splitlines()
    if lines == ["no DisableXlaCompilation"]:
        pytest.skip(f"{library} does not export tensorflow::DisableXlaCompilation")
    assert lines[0] == "ran"
    assert lines[1].startswith("refused 13:"), lines[1]  # INTERNAL
    assert "XLA compilation disabled" in lines[1]
