"""Adding an explanation method is one class: a test-local "gradient squared" method is
registered, exported, served through the TF1 session loader (TF Serving's path), verified
by the exporter, and matches an independent eager GradientTape reference.

Also: the registry is the one list of methods (config, CLI, evaluation, limits derive from it).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from exporter import (
    ConfigError,
    ExportConfig,
    MethodsConfig,
    SaliencyExporter,
    Tf1SavedModel,
    VerificationError,
)
from exporter import methods as registry
from exporter._attribution import vanilla_gradient
from exporter._config import config_from_mapping, signature_names
from exporter._reference import LogitsCopy
from exporter.methods.base import Graph, Method, NoParams, clean_reference, numpy_saliency
from tests.exporter.helpers import export, fused_softmax_model, samples

NAME = "gradient_squared"


# --- the whole method: one class ------------------------------------------------------------
class GradientSquared(Method):
    """saliency = normalize(reduce(gradient²)): a trivial method, only to show the shape."""

    name = NAME

    def explain(self, graph: Graph, images: tf.Tensor, target_class: tf.Tensor, params: NoParams) -> dict[str, tf.Tensor]:
        gradient, logits, target = vanilla_gradient(graph.head.logits_fn, images, graph.target_fn(target_class))
        return graph.explanation(logits, target, graph.saliency(tf.square(gradient)))

    def reference(self, copy, images, target_class, reduction, params):  # noqa: ANN001, ANN201
        out = clean_reference(copy, images, target_class)
        out["saliency"] = numpy_saliency(np.square(copy.gradient(images, out["target_class"])), reduction)
        return out
# ---------------------------------------------------------------------------------------------


class WrongReference(GradientSquared):
    """The same graph, a reference that disagrees: verification must refuse the export."""

    name = "gradient_squared_wrong"

    def reference(self, copy, images, target_class, reduction, params):  # noqa: ANN001, ANN201
        out = super().reference(copy, images, target_class, reduction, params)
        out["saliency"] = 1.0 - out["saliency"]
        return out


@pytest.fixture
def gradient_squared():
    with registry.registered(GradientSquared()) as method:
        yield method
    # Registration does not outlive the test.
    assert NAME not in registry.names()


def _independent_map(model, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eager GradientTape on a logits copy, squared, max over channels, min-max per image
    (the export's max_abs reduction and normalization), written out here in numpy."""
    copy = LogitsCopy.of(model).model
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = copy(x, training=False)
        target = tf.argmax(logits, axis=-1)
        selected = tf.reduce_sum(logits * tf.one_hot(target, logits.shape[-1]), axis=-1)
    squared = tape.gradient(selected, x).numpy().astype(np.float64) ** 2
    reduced = np.abs(squared).max(axis=-1)
    low = reduced.min(axis=(1, 2), keepdims=True)
    high = reduced.max(axis=(1, 2), keepdims=True)
    return (reduced - low) / (high - low), target.numpy()


@pytest.mark.integration
def test_a_method_defined_in_one_class_is_exported_served_and_verified(tmp_path, gradient_squared):
    model = fused_softmax_model()
    config = ExportConfig(methods=MethodsConfig(enabled=(NAME,)))
    path = export(model, tmp_path, config)

    report = json.loads((path / "assets.extra" / "export_report.json").read_text())
    assert gradient_squared.signature == "explain_gradient_squared"
    assert "explain_gradient_squared" in report["signatures"]
    # The exporter's own verification compared it with the method's reference.
    figures = report["verification"]["methods"]["explain_gradient_squared"]
    # The predicted and another class, and a [B, 2] target's two class columns.
    assert set(figures) == {
        "saliency_predicted_class_max_abs_diff", "saliency_other_class_max_abs_diff",
        "saliency_class_axis_0_max_abs_diff", "saliency_class_axis_1_max_abs_diff",
    }  # fmt: skip
    assert report["export"]["methods"]["enabled"] == ["vanilla", NAME]

    x = samples(4, seed=5)
    expected, target = _independent_map(model, x)
    with Tf1SavedModel(path) as saved:
        assert "explain_gradient_squared" in saved.signature_defs
        out = saved.run("explain_gradient_squared", {"images": x})
        vanilla = saved.run("explain", {"images": x})
    np.testing.assert_array_equal(out["target_class"], target)
    np.testing.assert_allclose(out["saliency"], expected, atol=1e-5)
    np.testing.assert_allclose(out["logits"], vanilla["logits"], atol=1e-6)
    # Squaring is not the identity: the map is not vanilla's.
    assert np.abs(out["saliency"] - vanilla["saliency"]).max() > 1e-2


@pytest.mark.integration
def test_verification_runs_the_registered_methods_reference(tmp_path):
    with registry.registered(WrongReference()):
        config = ExportConfig(methods=MethodsConfig(enabled=(WrongReference.name,)))
        with pytest.raises(VerificationError, match="explain_gradient_squared_wrong does not match its eager reference"):
            export(fused_softmax_model(), tmp_path, config)
    assert not (tmp_path / "1").exists(), "nothing is published when verification fails"


@pytest.mark.integration
def test_a_registered_method_is_known_to_config_limits_and_evaluation(gradient_squared):
    from exporter.evaluation import evaluated_methods

    config = config_from_mapping({"methods": {"enabled": [NAME]}, "limits": {"explain_gradient_squared": 16}})
    assert config.methods.enabled == ("vanilla", NAME)
    assert config.limits.explicit("explain_gradient_squared") == 16
    assert "explain_gradient_squared" in signature_names()
    assert evaluated_methods()[NAME] == "explain_gradient_squared"
    assert SaliencyExporter(fused_softmax_model(), config).signatures.keys() >= {"explain_gradient_squared"}


def test_an_unregistered_method_is_refused_naming_the_registered_ones():
    with pytest.raises(ConfigError, match=r"Unknown explanation method 'gradient_squared'; expected some of vanilla, smoothgrad"):
        MethodsConfig(enabled=(NAME,))


def test_the_registry_order_is_fixed_and_names_follow_the_signature_rule():
    # The first built-ins, in the order every listing uses (later built-ins come after them).
    assert registry.names()[:5] == ("vanilla", "smoothgrad", "integrated_gradients", "gradient_x_input", "gradcam")
    assert [m.signature for m in registry.registry()] == [
        "explain" if m.name == "vanilla" else f"explain_{m.name}" for m in registry.registry()
    ]


@pytest.mark.parametrize(
    ("method", "message"),
    [
        (registry.get("smoothgrad"), "is taken"),
        (object(), "takes a Method instance"),
    ],
)
def test_register_refuses_a_taken_name_or_a_non_method(method, message):
    with pytest.raises(ValueError, match=message):
        registry.register(method)  # type: ignore[arg-type]


def test_built_in_methods_cannot_be_unregistered():
    with pytest.raises(ValueError, match="'vanilla' is a built-in explanation method"):
        registry.unregister("vanilla")


@pytest.mark.integration
def test_the_packages_how_to_add_a_method_example_runs_as_written():
    import textwrap

    doc = registry.__doc__ or ""
    start = doc.index("    # exporter/methods/gradient_squared.py")
    code = textwrap.dedent(doc[start : doc.index("then list it", start)])
    namespace: dict = {}
    exec(compile(code, "exporter/methods/__init__.py docstring", "exec"), namespace)  # noqa: S102
    method = namespace["GradientSquared"]()
    model, x = fused_softmax_model(), samples(3, seed=2)
    with registry.registered(method):
        config = ExportConfig(methods=MethodsConfig(enabled=(NAME,), params=[namespace["GradientSquaredParams"]()]))
        signature = SaliencyExporter(model, config).signatures["explain_gradient_squared"]
        served = signature(tf.constant(x), tf.constant([-1], tf.int32))
        expected, target = _independent_map(model, x)
    np.testing.assert_array_equal(served["target_class"].numpy(), target)
    np.testing.assert_allclose(served["saliency"].numpy(), expected, atol=1e-5)
    assert NAME not in registry.names()


@pytest.mark.integration
def test_a_method_that_looks_into_layers_is_refused_for_an_explicit_logits_function():
    model = fused_softmax_model()
    config = ExportConfig(methods=MethodsConfig(enabled=("gradcam",)))
    assert registry.get("gradcam").needs_layer_graph
    with pytest.raises(ConfigError, match="the gradcam method is not supported with explicit logits"):
        SaliencyExporter(model, config, logits_fn=lambda x: model(x))
