"""`saliency-export --vertex-explanation-spec`: Vertex AI ExplanationSpecs → methods, parameters, rendering.

The specs below are Vertex's documented examples:

- the ExplanationSpec of an image model with Integrated Gradients, REST form
  (https://cloud.google.com/vertex-ai/docs/explainable-ai/configuring-explanations-feature-based,
  "TensorFlow pre-built container", Integrated gradients / XRAI tabs: `parameters` with
  `integratedGradientsAttribution.stepCount` / `xraiAttribution.stepCount`, `metadata.inputs.
  <feature>` with `inputTensorName`, `modality: "image"` and a `visualization` block, and
  `metadata.outputs.<name>.outputTensorName`);
- the visualization blocks are the "Sample configurations" of
  https://cloud.google.com/vertex-ai/docs/explainable-ai/visualization-settings (the IG one:
  OUTLINES, positive, lower bound 70, upper bound 99.9, pink_green, grayscale; the XRAI one:
  PIXELS, positive, 70 / 99.9, viridis, grayscale), in the snake_case that page uses;
- the field names and defaults of `ExplanationParameters`, `IntegratedGradientsAttribution`,
  `SmoothGradConfig`, `BlurBaselineConfig`, `XraiAttribution` and `InputMetadata` from the
  REST reference https://cloud.google.com/vertex-ai/docs/reference/rest/v1/ExplanationSpec.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest

from exporter import ExportConfig, load_config
from exporter import methods as _methods
from exporter._vertex import (
    VertexSpecError,
    apply_to_config,
    from_explanation_spec,
)
from exporter.cli import main
from serving_client.report import read_report
from serving_client.visualization import Visualization

from .helpers import fused_softmax_model

IG_VISUALIZATION = {
    "type": "OUTLINES",
    "polarity": "positive",
    "clip_percent_lowerbound": 70,
    "clip_percent_upperbound": 99.9,
    "color_map": "pink_green",
    "overlay_type": "grayscale",
}
XRAI_VISUALIZATION = {
    "type": "PIXELS",
    "polarity": "positive",
    "clip_percent_lowerbound": 70,
    "clip_percent_upperbound": 99.9,
    "color_map": "viridis",
    "overlay_type": "grayscale",
}
IG_SPEC = {
    "parameters": {"integratedGradientsAttribution": {"stepCount": 50}},
    "metadata": {
        "inputs": {
            "image": {
                "inputTensorName": "input_1",
                "modality": "image",
                "visualization": IG_VISUALIZATION,
            }
        },
        "outputs": {"probabilities": {"outputTensorName": "dense_1"}},
    },
}
XRAI_SPEC = {
    "parameters": {"xraiAttribution": {"stepCount": 50}},
    "metadata": {
        "inputs": {
            "image": {"inputTensorName": "input_1", "modality": "image", "visualization": XRAI_VISUALIZATION}
        },
        "outputs": {"probabilities": {"outputTensorName": "dense_1"}},
    },
}
HAS_XRAI = "xrai" in _methods.names()
IG_FIELDS = {f for f in _methods.get("integrated_gradients").params_type.__dataclass_fields__}
HAS_SMOOTH_IG = {"samples", "noise"} <= IG_FIELDS


def _with(spec: dict, path: tuple[str, ...], value: object) -> dict:
    spec = copy.deepcopy(spec)
    node = spec
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return spec


def test_ig_image_spec_sets_steps_and_the_documented_visualization_field_by_field():
    imported = from_explanation_spec(IG_SPEC)
    assert imported.method == "integrated_gradients"
    assert imported.params.steps == 50
    assert imported.explicit == ("steps",)
    default = _methods.get("integrated_gradients").params_type()
    assert imported.params.baseline == default.baseline  # no inputBaselines: the default stays
    assert imported.visualization == Visualization(
        type="outlines",
        polarity="positive",
        color_map="pink_green",
        clip_percent_upperbound=99.9,
        clip_percent_lowerbound=70.0,
        overlay_type="grayscale",
        defaulted=(),
    )
    assert imported.visualization.client_flags() == [
        "--visualization-type", "outlines", "--polarity", "positive", "--color-map", "pink_green",
        "--clip-percent-lowerbound", "70", "--clip-percent-upperbound", "99.9",
        "--overlay-type", "grayscale",
    ]  # fmt: skip
    # The tensor names are read, not needed: each says so.
    assert any("inputTensorName" in note for note in imported.notes)
    assert any("outputTensorName" in note for note in imported.notes)


def test_wrapped_snake_case_spec_reads_the_same_as_the_rest_form():
    snake = {
        "explanation_spec": {
            "parameters": {"integrated_gradients_attribution": {"step_count": 50}},
            "metadata": {
                "inputs": {"image": {"input_tensor_name": "input_1", "modality": "image",
                                     "visualization": IG_VISUALIZATION}},
                "outputs": {"probabilities": {"output_tensor_name": "dense_1"}},
            },
        }
    }  # fmt: skip
    rest, imported = from_explanation_spec(IG_SPEC), from_explanation_spec(snake)
    assert (imported.method, imported.params, imported.visualization) == (
        rest.method,
        rest.params,
        rest.visualization,
    )


def test_missing_visualization_fields_take_vertex_documented_defaults_per_method():
    ig = from_explanation_spec(_with(IG_SPEC, ("metadata", "inputs", "image", "visualization"), {}))
    assert ig.visualization is not None
    assert (ig.visualization.type, ig.visualization.color_map) == ("outlines", "pink_green")
    assert (ig.visualization.clip_percent_lowerbound, ig.visualization.clip_percent_upperbound) == (62.0, 99.9)
    assert (ig.visualization.polarity, ig.visualization.overlay_type) == ("positive", "none")
    assert set(ig.visualization.defaulted) == set(IG_VISUALIZATION)
    if HAS_XRAI:
        xrai = from_explanation_spec(_with(XRAI_SPEC, ("metadata", "inputs", "image", "visualization"), {}))
        assert (xrai.visualization.type, xrai.visualization.color_map) == ("pixels", "viridis")


def test_constant_input_baseline_becomes_the_ig_baseline():
    spec = _with(IG_SPEC, ("metadata", "inputs", "image", "inputBaselines"), [[[0.5, 0.5], [0.5, 0.5]]])
    imported = from_explanation_spec(spec)
    assert imported.params.baseline == 0.5
    assert set(imported.explicit) == {"steps", "baseline"}
    scalar = from_explanation_spec(_with(IG_SPEC, ("metadata", "inputs", "image", "inputBaselines"), [1.0]))
    assert scalar.params.baseline == 1.0


def test_blur_baseline_config_selects_blur_ig_with_max_sigma_and_steps_and_says_how_it_differs():
    spec = _with(IG_SPEC, ("parameters", "integratedGradientsAttribution", "blurBaselineConfig"), {"maxBlurSigma": 8})
    imported = from_explanation_spec(spec)
    assert imported.method == "blur_integrated_gradients"
    assert (imported.params.max_sigma, imported.params.steps) == (8.0, 50)
    default = _methods.get("blur_integrated_gradients").params_type()
    assert (imported.params.grad_step, imported.params.sqrt) == (default.grad_step, default.sqrt)
    assert any("blur path" in note for note in imported.notes)


@pytest.mark.skipif(not HAS_XRAI, reason="the xrai method is not registered in this tree")
def test_xrai_image_spec_sets_xrai_steps_and_its_visualization():
    imported = from_explanation_spec(XRAI_SPEC)
    assert imported.method == "xrai"
    assert imported.params.steps == 50
    assert imported.visualization is not None
    assert imported.visualization.render_options() == {
        "visualization_type": "pixels",
        "polarity": "positive",
        "colormap": "viridis",
        "clip_percentiles": (70.0, 99.9),
        "overlay_type": "grayscale",
    }


@pytest.mark.skipif(not HAS_SMOOTH_IG, reason="IG has no SmoothGrad-inside-IG parameters in this tree")
def test_smooth_grad_config_sets_ig_samples_and_noise():
    spec = _with(
        IG_SPEC,
        ("parameters", "integratedGradientsAttribution", "smoothGradConfig"),
        {"noiseSigma": 0.1, "noisySampleCount": 4},
    )
    imported = from_explanation_spec(spec)
    assert (imported.params.samples, imported.params.noise, imported.params.steps) == (4, 0.1, 50)
    assert any("noiseSigma" in note for note in imported.notes)


IG = ("parameters", "integratedGradientsAttribution")
IMAGE = ("metadata", "inputs", "image")
REFUSED = [
    (("parameters", "sampledShapleyAttribution"), {"pathCount": 10}, "$.parameters.sampledShapleyAttribution"),
    (("parameters", "examples"), {"neighborCount": 5}, "$.parameters.examples"),
    (("parameters", "topK"), -1, "$.parameters.topK"),
    ((*IG, "stepsPerPixel"), 3, "$.parameters.integratedGradientsAttribution.stepsPerPixel"),
    ((*IG, "smoothGradConfig"), {"featureNoiseSigma": {"noiseSigma": [{"name": "x", "sigma": 0.1}]}},
     "smoothGradConfig" if not HAS_SMOOTH_IG else "featureNoiseSigma"),
    ((*IMAGE, "featureValueDomain"), {"minValue": 0}, "$.metadata.inputs.image.featureValueDomain"),
    ((*IMAGE, "indexFeatureMapping"), ["a"], "indexFeatureMapping"),
    ((*IMAGE, "encodedTensorName"), "enc", "encodedTensorName"),
    ((*IMAGE, "groupName"), "g", "groupName"),
    ((*IMAGE, "modality"), "numeric", "modality"),
    ((*IMAGE, "encoding"), "BAG_OF_FEATURES", "encoding"),
    ((*IMAGE, "inputBaselines"), [0.0, 1.0], "inputBaselines"),
    ((*IMAGE, "inputBaselines"), [[[0.0, 1.0]]], "inputBaselines"),
    ((*IMAGE, "visualization", "colorMap"), "RAINBOW", "colorMap"),
    ((*IMAGE, "visualization", "opacity"), 0.5, "opacity"),
    (("metadata", "latentSpaceSource"), "x", "latentSpaceSource"),
    (("metadata", "outputs", "probabilities", "displayNameMappingKey"), "k", "displayNameMappingKey"),
    (("unknownTopLevel",), 1, "$.unknownTopLevel"),
]  # fmt: skip
if not HAS_XRAI:
    REFUSED.append((("parameters", "xraiAttribution"), {"stepCount": 10}, "xraiAttribution"))


@pytest.mark.parametrize(
    ("field", "value", "flags", "call"),
    [("topK", 3, ("--top-k", "3"), "top_k=3"), ("outputIndices", [1, 4], ("--classes=1,4",), "classes=[1,4]")],
)
def test_top_k_and_output_indices_become_the_clients_per_request_class_flags(field, value, flags, call):
    # Vertex's topK / outputIndices choose the classes explained; here that is the request's
    # target_class [batch, K], so the import changes no export setting and names the flags.
    plain = from_explanation_spec(IG_SPEC)
    imported = from_explanation_spec(_with(IG_SPEC, ("parameters", field), value))
    assert imported.class_flags == flags
    assert (imported.method, imported.params, imported.explicit) == (plain.method, plain.params, plain.explicit)
    assert any(call in note and " ".join(flags) in note for note in imported.notes)


@pytest.mark.parametrize(("field", "value"), [("outputIndices", [1, -2]), ("outputIndices", []), ("topK", 0)])
def test_class_choices_out_of_range_are_refused_naming_the_field_and_the_value(field, value):
    with pytest.raises(VertexSpecError, match=rf"\$\.parameters\.{field} must be .*got {re.escape(repr(value))}"):
        from_explanation_spec(_with(IG_SPEC, ("parameters", field), value))


def test_top_k_and_output_indices_together_are_refused_naming_both():
    spec = _with(_with(IG_SPEC, ("parameters", "topK"), 2), ("parameters", "outputIndices"), [1])
    with pytest.raises(VertexSpecError, match=r"\$\.parameters\.topK and \$\.parameters\.outputIndices"):
        from_explanation_spec(spec)


@pytest.mark.parametrize(("path", "value", "named"), REFUSED, ids=[".".join(r[0]) for r in REFUSED])
def test_unsupported_fields_are_refused_by_name(path, value, named):
    spec = _with(IG_SPEC, path, value)
    if path[:2] == ("parameters", "sampledShapleyAttribution") or path[:2] == ("parameters", "examples"):
        del spec["parameters"]["integratedGradientsAttribution"]
    with pytest.raises(VertexSpecError, match=named.replace("$", r"\$").replace(".", r"\.")):
        from_explanation_spec(spec)


@pytest.mark.parametrize(("path", "value", "named"), REFUSED[:6], ids=[".".join(r[0]) for r in REFUSED[:6]])
def test_cli_refuses_with_exit_1_naming_the_field_and_writes_no_version(path, value, named, tmp_path, capsys):
    spec_file = tmp_path / "spec.json"
    spec = _with(IG_SPEC, path, value)
    spec_file.write_text(json.dumps(spec))
    out = tmp_path / "models"
    code = main(["--model", str(tmp_path / "absent.keras"), "--output", str(out),
                 "--vertex-explanation-spec", str(spec_file), "-q"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert named.split(".")[-1] in err and str(spec_file) in err
    assert "saliency-serving imports" in err  # and what is supported
    assert not out.exists() or not any(out.iterdir())


def test_spec_values_fill_the_config_table_and_conflicting_explicit_values_are_refused(tmp_path):
    toml = tmp_path / "export.toml"
    toml.write_text("[methods]\nenabled = ['smoothgrad']\n[methods.integrated_gradients]\nbaseline = 0.25\n")
    config = load_config(toml)
    raw = {"methods": {"enabled": ["smoothgrad"], "integrated_gradients": {"baseline": 0.25}}}
    merged = apply_to_config(config, from_explanation_spec(IG_SPEC), explicit=raw)
    assert merged.methods.enabled == ("vanilla", "smoothgrad", "integrated_gradients")
    ig = merged.methods.params_of("integrated_gradients")
    assert (ig.steps, ig.baseline) == (50, 0.25)  # the spec's steps, the config's baseline
    conflict = {"methods": {"integrated_gradients": {"steps": 32}}}
    with pytest.raises(VertexSpecError, match=r"\[methods.integrated_gradients\] steps = 32"):
        apply_to_config(ExportConfig(), from_explanation_spec(IG_SPEC), explicit=conflict)
    same = {"methods": {"integrated_gradients": {"steps": 50}}}
    assert apply_to_config(ExportConfig(), from_explanation_spec(IG_SPEC), explicit=same).methods.params_of(
        "integrated_gradients"
    ).steps == 50


@pytest.mark.integration
def test_cli_export_from_the_documented_ig_spec_has_its_signature_parameters_and_visualization(tmp_path, capsys):
    model_file = tmp_path / "model.keras"
    fused_softmax_model().save(model_file)
    spec = _with(IG_SPEC, ("parameters", "integratedGradientsAttribution", "stepCount"), 8)
    spec = _with(spec, ("metadata", "inputs", "image", "inputBaselines"), [0.5])
    if HAS_SMOOTH_IG:
        spec = _with(spec, (*IG, "smoothGradConfig"), {"noiseSigma": 0.1, "noisySampleCount": 2})
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec))
    copy_file = tmp_path / "report.json"
    code = main(["--model", str(model_file), "--output", str(tmp_path / "models"),
                 "--vertex-explanation-spec", str(spec_file), "--report", str(copy_file)])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    version = Path(captured.out.strip().splitlines()[-1])
    report = read_report(version)
    assert "explain_integrated_gradients" in report.signatures
    assert report.signatures["explain_integrated_gradients"].outputs["attributions"].dtype == "DT_FLOAT"
    ig = report.export.methods["integrated_gradients"]
    assert (ig["steps"], ig["baseline"]) == (8, 0.5)
    if HAS_SMOOTH_IG:
        assert (ig["samples"], ig["noise"]) == (2, 0.1)
    assert report.visualization is not None
    assert {k: report.visualization[k] for k in IG_VISUALIZATION} == {
        "type": "outlines", "polarity": "positive", "clip_percent_lowerbound": 70.0,
        "clip_percent_upperbound": 99.9, "color_map": "pink_green", "overlay_type": "grayscale",
    }  # fmt: skip
    assert report.visualization["method"] == "integrated_gradients"
    assert report.unknown_fields() == []
    assert json.loads(copy_file.read_text())["visualization"] == dict(report.visualization)
    flags = " ".join(report.visualization["client_flags"])
    assert f"saliency-client explain --method integrated_gradients {flags}" in captured.err
    np.testing.assert_equal(report.model.input_shape, (6, 6, 2))


@pytest.mark.skipif(not HAS_XRAI, reason="the xrai method is not registered in this tree")
def test_xrai_smooth_grad_and_blur_baseline_are_refused_unless_xrai_has_them():
    xrai_fields = set(_methods.get("xrai").params_type.__dataclass_fields__)
    smooth = _with(XRAI_SPEC, ("parameters", "xraiAttribution", "smoothGradConfig"), {"noiseSigma": 0.1})
    if {"samples", "noise"} <= xrai_fields:
        assert from_explanation_spec(smooth).params.noise == 0.1
    else:
        with pytest.raises(VertexSpecError, match=r"\$\.parameters\.xraiAttribution\.smoothGradConfig"):
            from_explanation_spec(smooth)
    blur = _with(XRAI_SPEC, ("parameters", "xraiAttribution", "blurBaselineConfig"), {"maxBlurSigma": 4})
    with pytest.raises(VertexSpecError, match="blurBaselineConfig"):
        from_explanation_spec(blur)
    two = _with(XRAI_SPEC, ("parameters", "integratedGradientsAttribution"), {"stepCount": 5})
    with pytest.raises(VertexSpecError, match="two methods"):
        from_explanation_spec(two)
