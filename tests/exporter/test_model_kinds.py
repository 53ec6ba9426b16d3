"""The classifiers users actually have: softmax as an op, mixed precision, custom and
subclassed models, legacy files. Each export is checked against an eager GradientTape
on an independently built logits model (or the user's own logits function)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from exporter import (
    ExportConfig,
    ModelLoadError,
    SaliencyExporter,
    Tf1SavedModel,
    UnsupportedModelError,
    VerificationError,
    find_logits,
)
from exporter._loading import import_user_modules, load_keras_model
from exporter._reference import numpy_saliency
from tests.exporter.helpers import INPUT_SHAPE, conv_trunk, export, samples

BIN = Path(sys.executable).parent
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def _tape_gradient(logits_model, x: np.ndarray, target: np.ndarray) -> np.ndarray:
    """d logit[target]/d x by an eager GradientTape, in float32."""
    images = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(images)
        logits = tf.cast(logits_model(images), tf.float32)
        selected = tf.gather(logits, target, axis=1, batch_dims=1)
    return tape.gradient(selected, images).numpy()


def _run_explain(path: Path, x: np.ndarray) -> tuple[dict, dict]:
    with Tf1SavedModel(path) as saved:
        return saved.run("serving_default", {"images": x}), saved.run("explain", {"images": x})


@pytest.mark.integration
@pytest.mark.parametrize("op", ["keras.ops.softmax", "keras.activations.softmax"])
def test_softmax_applied_as_an_op_is_recognised_like_a_softmax_layer(op, tmp_path):
    keras.utils.set_random_seed(7)
    inputs = keras.Input(INPUT_SHAPE)
    logits = keras.layers.Dense(4, name="head")(conv_trunk(inputs))
    softmax = keras.ops.softmax if op == "keras.ops.softmax" else keras.activations.softmax
    model = keras.Model(inputs, softmax(logits))
    head = find_logits(model)
    assert head.kind == "softmax_op"

    x = samples()
    predict, explain = _run_explain(export(model, tmp_path), x)
    logits_model = keras.Model(inputs, logits)  # built by hand: the tensor the op consumes
    np.testing.assert_allclose(explain["logits"], logits_model(x).numpy(), atol=1e-5)
    np.testing.assert_allclose(predict["probabilities"], model(x).numpy(), atol=1e-6)
    gradient = _tape_gradient(logits_model, x, explain["target_class"])
    np.testing.assert_allclose(explain["saliency"], numpy_saliency(gradient, "max_abs"), atol=1e-5)


@pytest.fixture
def policy():
    yield keras.mixed_precision.set_global_policy
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.integration
@pytest.mark.parametrize("name", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_outputs_stay_float32_and_tolerances_follow_the_compute_dtype(name, policy, tmp_path):
    policy(name)
    keras.utils.set_random_seed(8)
    inputs = keras.Input(INPUT_SHAPE)
    x_ = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x_ = keras.layers.BatchNormalization()(x_)
    logits = keras.layers.Dense(5, name="head")(keras.layers.Flatten()(x_))
    # The usual mixed-precision head: the final activation in float32.
    model = keras.Model(inputs, keras.layers.Activation("softmax", dtype="float32")(logits))
    compute = name.removeprefix("mixed_")

    result = SaliencyExporter(model, ExportConfig()).write(tmp_path)
    verification = result.report["verification"]
    assert verification["compute_dtype"] == compute
    assert compute in verification["tolerance_rule"]
    assert verification["finite_differences"]["differentiated"] == "float64_copy"

    x = samples()
    predict, explain = _run_explain(result.path, x)
    for outputs in (predict, explain):
        for key in ("logits", "probabilities", "saliency"):
            if key in outputs:
                assert outputs[key].dtype == np.float32, key
    logits_model = keras.Model(inputs, logits)
    reference_logits = logits_model(x).numpy().astype(np.float32)
    eps = 2.0**-10 if compute == "float16" else 2.0**-7
    np.testing.assert_allclose(explain["logits"], reference_logits, atol=16 * eps * np.abs(reference_logits).max())
    gradient = _tape_gradient(logits_model, x, explain["target_class"])
    assert np.abs(gradient).max() > 0  # the gradient flowed through the casts
    np.testing.assert_allclose(explain["saliency"], numpy_saliency(gradient, "max_abs"), atol=16 * eps)


@keras.saving.register_keras_serializable(package="test_model_kinds")
class WrongGradientScale(keras.layers.Layer):
    """Forward: 3·x. Backward: claims 1·upstream — a planted wrong gradient."""

    def call(self, inputs):
        @tf.custom_gradient
        def triple(x):
            return 3.0 * x, lambda upstream: upstream

        return triple(inputs)


@pytest.mark.integration
def test_a_wrong_gradient_is_caught_by_the_finite_difference_check(tmp_path):
    keras.utils.set_random_seed(9)
    inputs = keras.Input(INPUT_SHAPE)
    x_ = WrongGradientScale()(conv_trunk(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x_))
    # Saliency maps are min-max normalized, so the exported and eager maps agree (the same
    # wrong gradient, 3× too small); only the finite differences can tell.
    with pytest.raises(VerificationError, match="finite differences of a float64 copy"):
        export(model, tmp_path)
    assert not any(tmp_path.iterdir())


class _Net(keras.Model):
    """A subclassed classifier whose `call` returns probabilities; `logits` is its own method."""

    def __init__(self) -> None:
        super().__init__(name="net")
        self.conv = keras.layers.Conv2D(3, 3, activation="tanh")
        self.flatten = keras.layers.Flatten()
        self.dense = keras.layers.Dense(4)

    def logits(self, images):
        return self.dense(self.flatten(self.conv(images)))

    def call(self, images):
        return keras.ops.softmax(self.logits(images))


@pytest.mark.integration
def test_subclassed_model_is_refused_with_the_logits_fn_fix():
    net = _Net()
    net(samples(1))
    with pytest.raises(UnsupportedModelError, match="subclassed.*logits_fn"):
        SaliencyExporter(net, ExportConfig(input_shape=INPUT_SHAPE))


@pytest.mark.integration
def test_subclassed_model_exports_when_told_where_the_logits_are(tmp_path):
    keras.utils.set_random_seed(10)
    net = _Net()
    net(samples(1))
    config = ExportConfig(input_shape=INPUT_SHAPE)
    exporter = SaliencyExporter(net, config, logits_fn=net.logits, reference_probabilities=lambda x: net(x).numpy())
    assert exporter.head.kind == "explicit"
    result = exporter.write(tmp_path)
    assert result.report["model"]["keras_input_shape"] is None

    x = samples()
    predict, explain = _run_explain(result.path, x)
    np.testing.assert_allclose(predict["probabilities"], net(x).numpy(), atol=1e-6)
    gradient = _tape_gradient(net.logits, x, explain["target_class"])
    np.testing.assert_allclose(explain["saliency"], numpy_saliency(gradient, "max_abs"), atol=1e-5)


@pytest.mark.integration
def test_subclassed_model_without_an_input_shape_says_which_setting(tmp_path):
    net = _Net()
    net(samples(1))
    with pytest.raises(UnsupportedModelError, match="input_shape"):
        SaliencyExporter(net, ExportConfig(), logits_fn=net.logits)


_CUSTOM_MODULE = '''
import keras


@keras.saving.register_keras_serializable(package="{package}")
class Scale(keras.layers.Layer):
    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, inputs):
        return inputs * self.factor

    def get_config(self):
        return {{**super().get_config(), "factor": self.factor}}
'''


def _custom_model_file(tmp_path: Path, package: str) -> tuple[Path, Path]:
    module = tmp_path / f"{package}.py"
    module.write_text(textwrap.dedent(_CUSTOM_MODULE.format(package=package)))
    import_user_modules([str(module)])
    scale = sys.modules[package].Scale
    inputs = keras.Input(INPUT_SHAPE)
    x_ = scale(1.5)(conv_trunk(inputs))
    path = tmp_path / "custom.keras"
    keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x_)).save(path)
    return module, path


@pytest.mark.integration
def test_cli_import_loads_a_model_with_registered_custom_layers(tmp_path):
    module, path = _custom_model_file(tmp_path, "kinds_custom_layers")
    refused = subprocess.run(
        [str(BIN / "saliency-export"), "--model", str(path), "--output", str(tmp_path / "a"), "-q"],
        capture_output=True, text=True, env=ENV, timeout=600,
    )
    assert refused.returncode == 1
    assert "Scale" in refused.stderr and "--import MODULE" in refused.stderr
    done = subprocess.run(
        [str(BIN / "saliency-export"), "--model", str(path), "--output", str(tmp_path / "b"),
         "--import", str(module), "-q"],
        capture_output=True, text=True, env=ENV, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(tmp_path / "b" / "1")


@pytest.mark.integration
def test_a_modules_custom_objects_mapping_is_used_for_unregistered_classes(tmp_path):
    module = tmp_path / "kinds_mapping.py"
    module.write_text(textwrap.dedent('''
        import keras

        class Shift(keras.layers.Layer):
            def call(self, inputs):
                return inputs + 1.0

        custom_objects = {"Shift": Shift}
    '''))
    objects = import_user_modules([str(module)])
    inputs = keras.Input(INPUT_SHAPE)
    x_ = objects["Shift"]()(conv_trunk(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x_))
    path = tmp_path / "mapped.keras"
    model.save(path)
    with pytest.raises(ModelLoadError, match="'Shift'.*--import MODULE"):
        load_keras_model(path)
    loaded = load_keras_model(path, custom_objects=objects)
    x = samples()
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), atol=1e-6)


def test_import_of_a_missing_module_says_what_was_expected():
    with pytest.raises(ModelLoadError, match="--import no_such_module_xyz: expected an importable module"):
        import_user_modules(["no_such_module_xyz"])


@pytest.mark.integration
def test_legacy_h5_file_still_exports(tmp_path):
    keras.utils.set_random_seed(11)
    inputs = keras.Input(INPUT_SHAPE)
    logits = keras.layers.Dense(3, name="head")(conv_trunk(inputs))
    model = keras.Model(inputs, keras.layers.Softmax()(logits))
    path = tmp_path / "legacy.h5"
    with warnings.catch_warnings():  # Keras warns that HDF5 is legacy
        warnings.simplefilter("ignore")
        model.save(path)
    loaded = load_keras_model(path)
    x = samples()
    _, explain = _run_explain(export(loaded, tmp_path / "out"), x)
    gradient = _tape_gradient(keras.Model(inputs, logits), x, explain["target_class"])
    np.testing.assert_allclose(explain["saliency"], numpy_saliency(gradient, "max_abs"), atol=1e-5)


@pytest.mark.integration
def test_batchnorm_between_dense_and_softmax_is_part_of_the_logits(tmp_path):
    keras.utils.set_random_seed(12)
    inputs = keras.Input(INPUT_SHAPE)
    dense = keras.layers.Dense(3)(conv_trunk(inputs))
    bn = keras.layers.BatchNormalization()
    logits = bn(dense)
    bn.moving_mean.assign(np.array([0.5, -0.2, 0.1], np.float32))
    bn.moving_variance.assign(np.array([2.0, 0.5, 3.0], np.float32))
    model = keras.Model(inputs, keras.layers.Softmax()(logits))
    x = samples()
    _, explain = _run_explain(export(model, tmp_path), x)
    logits_model = keras.Model(inputs, logits)
    np.testing.assert_allclose(explain["logits"], logits_model(x, training=False).numpy(), atol=1e-5)
    gradient = _tape_gradient(lambda t: logits_model(t, training=False), x, explain["target_class"])
    np.testing.assert_allclose(explain["saliency"], numpy_saliency(gradient, "max_abs"), atol=1e-5)


@pytest.mark.integration
def test_multi_output_model_is_refused_clearly():
    inputs = keras.Input(INPUT_SHAPE)
    features = conv_trunk(inputs)
    model = keras.Model(inputs, [keras.layers.Dense(3, activation="softmax")(features), keras.layers.Dense(1)(features)])
    with pytest.raises(UnsupportedModelError, match="exactly one output; model .* has 2"):
        SaliencyExporter(model)


def test_tensorflow_log_lines_are_printed_once():
    import logging

    from exporter._cli import configure_logging

    tf_logger = logging.getLogger("tensorflow")
    saved = list(tf_logger.handlers)
    # What TensorFlow does when imported before logging is configured.
    tf_logger.addHandler(logging.StreamHandler(sys.stderr))
    try:
        configure_logging(quiet=False)
        assert tf_logger.handlers == []  # its records reach stderr only via the root handler
        assert tf_logger.propagate
    finally:
        tf_logger.handlers[:] = saved


@pytest.mark.integration
def test_mixed_precision_exports_every_method(policy, tmp_path):
    from exporter._config import MethodsConfig

    policy("mixed_float16")
    keras.utils.set_random_seed(13)
    inputs = keras.Input((8, 8, 2))
    x_ = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    logits = keras.layers.Dense(5)(keras.layers.Flatten()(x_))
    model = keras.Model(inputs, keras.layers.Activation("softmax", dtype="float32")(logits))
    enabled = ("vanilla", "smoothgrad", "integrated_gradients", "gradient_x_input", "gradcam")
    # Verification compares every signature with its eager reference and checks float32 outputs.
    result = SaliencyExporter(model, ExportConfig(methods=MethodsConfig(enabled=enabled))).write(tmp_path)
    assert set(result.report["verification"]["methods"]) == {
        "explain_smoothgrad", "explain_integrated_gradients", "explain_gradient_x_input", "explain_gradcam"
    }
