"""Migration from Vertex Explainable AI: an ``ExplanationSpec`` JSON → methods, parameters, rendering.

``from_explanation_spec(spec)`` reads a Vertex ``ExplanationSpec`` (``{"parameters": …,
"metadata": …}``, also wrapped as ``{"explanationSpec": …}`` as in a ``Model`` resource; keys
in REST camelCase or the Python SDK's snake_case) and returns a :class:`VertexImport`: the
method it enables with its parameters, the rendering defaults of the image input's
``visualization`` block and notes on what was read but changes nothing. ``apply_to_config``
folds it into an :class:`~exporter.ExportConfig` (the precedence is documented there).

What has no equivalent here is refused by name (:class:`VertexSpecError`, with the field's JSON
path and what is supported): Sampled Shapley, example-based explanations, ``topK: -1`` (all
classes), tabular and text metadata, several input baselines, and any field this module does not
know. ``topK`` and ``outputIndices`` choose the classes explained, which is a per-request choice
here (``target_class`` ``[batch, K]``): they become the client's ``--top-k`` / ``--classes``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from exporter import methods as _methods
from exporter._config import ExportConfig
from exporter._errors import ConfigError
from serving_client.visualization import Visualization, snake_case

__all__ = [
    "VertexImport",
    "VertexSpecError",
    "apply_to_config",
    "from_explanation_spec",
    "load_explanation_spec",
    "record_visualization",
]

_SUPPORTED = (
    "saliency-serving imports parameters.integratedGradientsAttribution (stepCount, "
    "blurBaselineConfig.maxBlurSigma{smooth}), {xrai}and metadata.inputs.<image input> "
    "(modality image, encoding IDENTITY, one constant inputBaselines value, visualization)"
)
# Fields read only for a note: the exporter finds the model's input and logits itself.
_TENSOR_NAMES = ("input_tensor_name", "output_tensor_name")


class VertexSpecError(ConfigError):
    """A Vertex ExplanationSpec field that saliency-serving cannot honour (named, with its path)."""


@dataclasses.dataclass(frozen=True)
class VertexImport:
    """What a Vertex ExplanationSpec configures here.

    Attributes:
        method: the explanation method it selects (a registered method's name).
        params: that method's parameters object (``None`` for a method without any).
        explicit: the parameter names the spec set (the others keep their defaults).
        visualization: the image input's rendering defaults, when the spec has a
            ``visualization`` block.
        class_names: from ``outputs.<name>.indexDisplayNameMapping``, when given.
        notes: fields read that change nothing (tensor names) and approximations made.
        class_flags: the client flags that explain the classes ``topK`` / ``outputIndices``
            chose (``--top-k 3``, ``--classes=1,2``): per request here, not an export setting.
    """

    method: str
    params: Any
    explicit: tuple[str, ...]
    visualization: Visualization | None
    class_names: tuple[str, ...] | None
    notes: tuple[str, ...]
    class_flags: tuple[str, ...] = ()


def load_explanation_spec(path: str | Path) -> VertexImport:
    """Read a Vertex ExplanationSpec JSON file (see :func:`from_explanation_spec`).

    Raises:
        VertexSpecError: the file is missing or not JSON, or a field is refused.
    """
    path = Path(path)
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VertexSpecError(f"Vertex ExplanationSpec file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise VertexSpecError(f"{path} is not a readable JSON ExplanationSpec: {error}") from None
    try:
        return from_explanation_spec(spec)
    except VertexSpecError as error:
        raise VertexSpecError(f"{path}: {error}") from None


def from_explanation_spec(spec: Mapping[str, Any]) -> VertexImport:
    """Translate a Vertex ``ExplanationSpec`` into this exporter's method and parameters.

    Args:
        spec: the parsed JSON: ``{"parameters": …, "metadata": …}`` or ``{"explanationSpec":
            {…}}``; camelCase or snake_case keys.

    Returns:
        The :class:`VertexImport`.

    Raises:
        VertexSpecError: naming the first refused field, its JSON path and what is supported.
    """
    reader = _Reader()
    root = reader.mapping(spec, "$")
    if len(root) == 1 and snake_case(next(iter(root))) == "explanation_spec":
        key = next(iter(root))
        root = reader.mapping(root[key], f"$.{key}")
        prefix = f"$.{key}"
    else:
        prefix = "$"
    fields = reader.fields(root, prefix, ("parameters", "metadata"))
    if "parameters" not in fields:
        raise VertexSpecError(
            f"{prefix}.parameters is missing: an ExplanationSpec names its attribution method there "
            '(e.g. {"parameters": {"integratedGradientsAttribution": {"stepCount": 50}}}).'
        )
    method, params, explicit = reader.parameters(*fields["parameters"])
    baseline, visualization, class_names = None, None, None
    if "metadata" in fields:
        baseline, visualization, class_names = reader.metadata(*fields["metadata"], method=method)
    if baseline is not None:
        if "baseline" not in _field_names(type(params)):
            raise VertexSpecError(
                f"{baseline[1]}: {method} has no constant baseline (its path starts at the blurred "
                "image); remove inputBaselines or blurBaselineConfig."
            )
        params = dataclasses.replace(params, baseline=baseline[0])
        explicit = (*explicit, "baseline")
    return VertexImport(
        method=method,
        params=params,
        explicit=explicit,
        visualization=visualization,
        class_names=class_names,
        notes=tuple(reader.notes),
        class_flags=reader.class_flags,
    )


def apply_to_config(
    config: ExportConfig, imported: VertexImport, *, explicit: Mapping[str, Any] | None = None
) -> ExportConfig:
    """Fold an imported spec into a config. The precedence:

    - the spec's method is added to ``[methods] enabled`` (the config's other methods stay);
    - the spec's parameters replace that method's table, key by key: keys the spec does not
      set keep the config's values;
    - a key set both by the spec and explicitly by the config file (``explicit``, the raw
      TOML mapping) to different values is refused: neither silently wins;
    - ``class_names`` likewise: the spec's when the config has none, refused when they differ.

    Args:
        config: the config (from ``--config``, or the defaults).
        imported: what :func:`from_explanation_spec` returned.
        explicit: the config file as parsed TOML, to tell explicit keys from defaults.

    Returns:
        The new config.

    Raises:
        VertexSpecError: a value set differently by both.
    """
    raw = dict(explicit or {})
    table = dict(raw.get("methods", {}).get(imported.method, {}))
    current = config.methods.params_of(imported.method)
    changes: dict[str, Any] = {}
    for name in imported.explicit:
        value = getattr(imported.params, name)
        if name in table and table[name] != value:
            raise VertexSpecError(
                f"[methods.{imported.method}] {name} = {table[name]!r} in the config, but the Vertex "
                f"spec sets it to {value!r}; remove one of them."
            )
        changes[name] = value
    methods = config.methods
    if changes:
        methods = methods.replace_params(dataclasses.replace(current, **changes))
    methods = dataclasses.replace(methods, enabled=(*methods.enabled, imported.method))
    overrides: dict[str, Any] = {"methods": methods}
    if imported.class_names is not None:
        if config.class_names is not None and tuple(config.class_names) != imported.class_names:
            raise VertexSpecError(
                "[model] class_names in the config differ from the Vertex spec's "
                "indexDisplayNameMapping; remove one of them."
            )
        overrides["class_names"] = imported.class_names
    return config.replace(**overrides)


def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else ()


def _supported() -> str:
    ig_fields = _field_names(_methods.get("integrated_gradients").params_type)
    smooth = ", smoothGradConfig" if {"samples", "noise"} <= set(ig_fields) else ""
    xrai = "parameters.xraiAttribution (stepCount), " if "xrai" in _methods.names() else ""
    return _SUPPORTED.format(smooth=smooth, xrai=xrai)


class _Reader:
    """Walks the spec, naming each refused field by its JSON path."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.class_flags: tuple[str, ...] = ()

    def refuse(self, path: str, why: str) -> VertexSpecError:
        return VertexSpecError(f"{path} is not supported: {why} ({_supported()}).")

    def mapping(self, value: Any, path: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise VertexSpecError(f"{path} must be a JSON object; got {value!r}.")
        return value

    def fields(
        self, obj: Mapping[str, Any], path: str, known: tuple[str, ...], refused: Mapping[str, str] | None = None
    ) -> dict[str, tuple[Any, str]]:
        """snake_name → (value, JSON path), refusing unknown and refused names."""
        out: dict[str, tuple[Any, str]] = {}
        for key, value in obj.items():
            name, where = snake_case(str(key)), f"{path}.{key}"
            if refused and name in refused:
                raise self.refuse(where, refused[name])
            if name not in known:
                raise self.refuse(where, "saliency-serving does not know this field")
            out[name] = (value, where)
        return out

    def number(self, value: Any, path: str, *, integer: bool = False) -> Any:
        kinds = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise VertexSpecError(f"{path} must be {'an integer' if integer else 'a number'}; got {value!r}.")
        return value

    def parameters(self, value: Any, path: str) -> tuple[str, Any, tuple[str, ...]]:
        params = self.fields(
            self.mapping(value, path),
            path,
            ("integrated_gradients_attribution", "xrai_attribution", "top_k", "output_indices"),
            refused={
                "sampled_shapley_attribution": "Sampled Shapley is for tabular models; saliency-serving "
                "explains images with gradient methods",
                "examples": "example-based explanations (nearest neighbours) have no equivalent",
            },
        )
        self.classes(params)
        methods = [name for name in ("integrated_gradients_attribution", "xrai_attribution") if name in params]
        if not methods:
            raise VertexSpecError(
                f"{path} names no attribution method; expected integratedGradientsAttribution or "
                "xraiAttribution."
            )
        if len(methods) > 1:
            raise VertexSpecError(f"{path} names two methods ({' and '.join(methods)}); Vertex allows one.")
        body, where = params[methods[0]]
        if methods[0] == "xrai_attribution":
            return self.xrai(body, where)
        return self.integrated_gradients(body, where)

    def classes(self, params: Mapping[str, tuple[Any, str]]) -> None:
        """``topK`` / ``outputIndices``: the classes each request explains, as client flags."""
        if "top_k" in params and "output_indices" in params:
            raise VertexSpecError(
                f"{params['top_k'][1]} and {params['output_indices'][1]} are both set; Vertex takes one of them."
            )
        if "top_k" in params:
            value, where = params["top_k"]
            count = self.number(value, where, integer=True)
            if count == -1:
                raise self.refuse(
                    where,
                    "topK -1 (every class) is not a request here; list the classes with "
                    "saliency-client explain --classes=0,1,... (or explain(classes=[...]))",
                )
            if count < 1:
                raise VertexSpecError(f"{where} must be a positive integer (or -1); got {count!r}.")
            self.class_flags, call = ("--top-k", str(count)), f"top_k={count}"
        elif "output_indices" in params:
            value, where = params["output_indices"]
            if (
                not isinstance(value, list)
                or not value
                or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in value)
            ):
                raise VertexSpecError(f"{where} must be a non-empty JSON list of class indices >= 0; got {value!r}.")
            listed = ",".join(str(v) for v in value)
            self.class_flags, call = (f"--classes={listed}",), f"classes=[{listed}]"
        else:
            return
        self.notes.append(
            f"{where}: the classes explained are chosen per request here (target_class [batch, K]): "
            f"saliency-client explain {' '.join(self.class_flags)}, or ServingClient.explain(..., {call})."
        )

    def integrated_gradients(self, value: Any, path: str) -> tuple[str, Any, tuple[str, ...]]:
        fields = self.fields(
            self.mapping(value, path), path, ("step_count", "smooth_grad_config", "blur_baseline_config")
        )
        values: dict[str, Any] = {}
        method = "integrated_gradients"
        if "blur_baseline_config" in fields:
            method = "blur_integrated_gradients"
            blur, where = fields["blur_baseline_config"]
            blur_fields = self.fields(self.mapping(blur, where), where, ("max_blur_sigma",))
            if "max_blur_sigma" in blur_fields:
                values["max_sigma"] = float(self.number(*blur_fields["max_blur_sigma"]))
            self.notes.append(
                f"{where}: Vertex integrates along the straight line from the blurred image; "
                "blur_integrated_gradients integrates along the blur path itself (Xu et al. 2020), "
                "the method the blur baseline comes from. Both start at the image blurred with "
                "maxBlurSigma."
            )
        if "step_count" in fields:
            values["steps"] = self.number(*fields["step_count"], integer=True)
        if "smooth_grad_config" in fields:
            if method != "integrated_gradients":
                raise self.refuse(
                    fields["smooth_grad_config"][1],
                    "SmoothGrad inside Blur IG has no equivalent; use it with plain IG",
                )
            values.update(self.smooth_grad(*fields["smooth_grad_config"], method))
        return self.build(method, values, path)

    def xrai(self, value: Any, path: str) -> tuple[str, Any, tuple[str, ...]]:
        if "xrai" not in _methods.names():
            raise self.refuse(path, "this installation has no xrai method")
        fields = self.fields(
            self.mapping(value, path), path, ("step_count", "smooth_grad_config", "blur_baseline_config")
        )
        values: dict[str, Any] = {}
        if "step_count" in fields:
            values["steps"] = self.number(*fields["step_count"], integer=True)
        if "blur_baseline_config" in fields:
            raise self.refuse(
                fields["blur_baseline_config"][1], "XRAI here aggregates IG from black and white baselines"
            )
        if "smooth_grad_config" in fields:
            values.update(self.smooth_grad(*fields["smooth_grad_config"], "xrai"))
        return self.build("xrai", values, path)

    def smooth_grad(self, value: Any, path: str, method: str) -> dict[str, Any]:
        fields_of = _field_names(_methods.get(method).params_type)
        if not {"samples", "noise"} <= set(fields_of):
            raise self.refuse(
                path,
                f"SmoothGrad inside {method} (samples, noise) is not available in this installation's "
                f"{method} parameters",
            )
        fields = self.fields(
            self.mapping(value, path),
            path,
            ("noise_sigma", "noisy_sample_count"),
            refused={
                "feature_noise_sigma": "per-feature noise has no equivalent; give one noiseSigma for "
                "the whole image"
            },
        )
        out: dict[str, Any] = {}
        if "noisy_sample_count" in fields:
            out["samples"] = self.number(*fields["noisy_sample_count"], integer=True)
        if "noise_sigma" in fields:
            out["noise"] = float(self.number(*fields["noise_sigma"]))
            self.notes.append(
                f"{fields['noise_sigma'][1]}: Vertex's noiseSigma is in input units; {method}'s noise "
                "is a fraction of the input range; the two are equal for inputs in [0, 1]."
            )
        return out

    def build(self, method: str, values: dict[str, Any], path: str) -> tuple[str, Any, tuple[str, ...]]:
        params_type = _methods.get(method).params_type
        try:
            params = params_type(**values)
        except ConfigError as error:
            raise VertexSpecError(f"{path}: {error}") from None
        return method, params, tuple(values)

    def metadata(
        self, value: Any, path: str, *, method: str
    ) -> tuple[tuple[float, str] | None, Visualization | None, tuple[str, ...] | None]:
        fields = self.fields(
            self.mapping(value, path),
            path,
            ("inputs", "outputs", "feature_attributions_schema_uri"),
            refused={"latent_space_source": "example-based explanations have no equivalent"},
        )
        if "feature_attributions_schema_uri" in fields:
            self.notes.append(f"{fields['feature_attributions_schema_uri'][1]}: ignored (AutoML tabular only).")
        baseline, visualization, class_names = None, None, None
        if "inputs" in fields:
            inputs, where = fields["inputs"]
            inputs = self.mapping(inputs, where)
            if len(inputs) != 1:
                raise self.refuse(
                    where,
                    f"{len(inputs)} inputs; saliency-serving explains models with one image input",
                )
            name, body = next(iter(inputs.items()))
            baseline, visualization = self.image_input(body, f"{where}.{name}", method)
        if "outputs" in fields:
            outputs, where = fields["outputs"]
            outputs = self.mapping(outputs, where)
            if len(outputs) > 1:
                raise self.refuse(where, f"{len(outputs)} outputs; saliency-serving explains one logits output")
            for name, body in outputs.items():
                class_names = self.output(body, f"{where}.{name}")
        return baseline, visualization, class_names

    def image_input(
        self, value: Any, path: str, method: str
    ) -> tuple[tuple[float, str] | None, Visualization | None]:
        tabular = "tabular and text inputs are not explained here (image models only)"
        fields = self.fields(
            self.mapping(value, path),
            path,
            ("input_tensor_name", "modality", "encoding", "input_baselines", "visualization"),
            refused={
                name: tabular
                for name in (
                    "feature_value_domain",
                    "indices_tensor_name",
                    "dense_shape_tensor_name",
                    "index_feature_mapping",
                    "encoded_tensor_name",
                    "encoded_baselines",
                    "group_name",
                )
            },
        )
        if "input_tensor_name" in fields:
            self.notes.append(
                f"{fields['input_tensor_name'][1]}: not needed; the exporter explains the model's one input."
            )
        if "modality" in fields:
            modality, where = fields["modality"]
            if modality != "image":
                raise self.refuse(where, f"modality {modality!r}; only image inputs are explained")
        else:
            self.notes.append(f"{path}: no modality given; Vertex's default is numeric, read as image here.")
        if "encoding" in fields:
            encoding, where = fields["encoding"]
            if str(encoding).upper() not in ("IDENTITY", "ENCODING_UNSPECIFIED"):
                raise self.refuse(where, f"encoding {encoding!r}; image inputs are IDENTITY (the tensor itself)")
        baseline = None
        if "input_baselines" in fields:
            baseline = (self.baseline(*fields["input_baselines"]), fields["input_baselines"][1])
        visualization = None
        if "visualization" in fields:
            block, where = fields["visualization"]
            try:
                visualization = Visualization.from_vertex(block, method=method, where=where)
            except ValueError as error:
                raise VertexSpecError(str(error)) from None
        return baseline, visualization

    def baseline(self, value: Any, path: str) -> float:
        if not isinstance(value, list) or not value:
            raise VertexSpecError(f"{path} must be a non-empty JSON list of baselines; got {value!r}.")
        if len(value) > 1:
            raise self.refuse(
                path,
                f"{len(value)} baselines; the export has one constant baseline (several baselines "
                "averaged are a per-request input of integrated_gradients, not an export setting)",
            )
        values = _flatten(value[0])
        if not values or any(isinstance(v, bool) or not isinstance(v, int | float) for v in values):
            raise VertexSpecError(f"{path}[0] must be a number or a nested list of numbers; got {value[0]!r}.")
        if len(set(values)) != 1:
            raise self.refuse(f"{path}[0]", "an image baseline that is not one constant value")
        return float(values[0])

    def output(self, value: Any, path: str) -> tuple[str, ...] | None:
        fields = self.fields(
            self.mapping(value, path),
            path,
            ("output_tensor_name", "index_display_name_mapping"),
            refused={"display_name_mapping_key": "class names come from indexDisplayNameMapping or [model] class_names"},
        )
        if "output_tensor_name" in fields:
            self.notes.append(
                f"{fields['output_tensor_name'][1]}: not needed; the exporter finds the logits "
                "(--logits-layer to choose)."
            )
        if "index_display_name_mapping" not in fields:
            return None
        names, where = fields["index_display_name_mapping"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise VertexSpecError(f"{where} must be a JSON list of class names; got {names!r}.")
        return tuple(names)


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [item for part in value for item in _flatten(part)]
    return [value]


def record_visualization(
    version_dir: str | Path, imported: VertexImport, *, copies: tuple[str | Path, ...] = ()
) -> dict[str, Any] | None:
    """Add the spec's rendering defaults to a published version's report (``visualization``).

    The report is not part of the export's files hash (``export_files``), so ``saliency-export
    verify`` still holds; it is replaced atomically (written beside, then renamed). ``copies``
    (``--report FILE``) get the same report.

    Returns:
        The section written, or None when the spec has no visualization block.
    """
    import os

    from serving_client.contract import REPORT_ASSET
    from serving_client.report import parse_report

    if imported.visualization is None:
        return None
    section = {
        **imported.visualization.to_mapping(),
        "method": imported.method,
        "source": "vertex_explanation_spec",
        "client_flags": imported.visualization.client_flags(),
    }
    path = Path(version_dir) / REPORT_ASSET
    report = json.loads(path.read_text(encoding="utf-8"))
    report["visualization"] = section
    parse_report(report, path=path)
    text = json.dumps(report, indent=2, sort_keys=False) + "\n"
    staged = path.with_name(path.name + ".tmp")
    staged.write_text(text, encoding="utf-8")
    os.replace(staged, path)
    for copy in copies:
        Path(copy).write_text(text, encoding="utf-8")
    return section
