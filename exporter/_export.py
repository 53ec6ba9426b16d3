"""The export: a builder for full control, and `export_model` for the common case."""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from exporter import methods as _methods
from exporter._config import ExportConfig, MethodsConfig, load_config
from exporter._config_loader import to_mapping
from exporter._errors import ModelLoadError, UnsupportedModelError
from exporter._files_hash import ALGORITHM as FILES_HASH
from exporter._files_hash import export_files_sha256
from exporter._graph_defaults import record_signature_defaults
from exporter._loading import load_keras_model, model_fingerprint
from exporter._logits import LogitsHead, explicit_head, find_logits, subclassed_message
from exporter._report import build_report, signature_specs, write_report
from exporter._signatures import build_signatures, input_defaults
from exporter._tf1 import recording_runs
from exporter._verify import verify_export
from exporter._verify_cpp import CppLoaderCheck
from exporter._versioning import next_version, staged_version
from exporter._warmup import WARMUP_FILE, write_warmup_requests
from serving_client import contract as c

__all__ = ["ExportResult", "SaliencyExporter", "export_model"]

logger = logging.getLogger("exporter")

REPORT_ASSET = c.REPORT_ASSET
CLASS_NAMES_ASSET = Path("assets") / "class_names.txt"


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """A published export.

    Attributes:
        path: `base_dir/<version>`.
        version: The version number.
        report: The export report (also in `assets.extra/export_report.json`).
    """

    path: Path
    version: int
    report: dict[str, Any]


def _symbolic_inputs(model: Any) -> list[Any] | None:
    """The model's symbolic inputs, or None when it has no graph (subclassed, unbuilt)."""
    try:
        inputs = getattr(model, "inputs", None)
    except (AttributeError, ValueError):  # Keras raises for a model that was never called
        return None
    return list(inputs) if inputs else None


def _input_shape(
    model: Any, override: tuple[int, int, int] | None, *, explicit: bool = False
) -> tuple[int, int, int]:
    inputs = _symbolic_inputs(model)
    if inputs is None:
        if not explicit:
            raise UnsupportedModelError(subclassed_message(model))
        if override is None:
            raise UnsupportedModelError(
                f"Model {getattr(model, 'name', type(model).__name__)!r} has no symbolic input, so "
                "the image shape must be given: ExportConfig(input_shape=(H, W, C)) (config "
                "[model] input_shape)."
            )
        height, width, channels = override
        return (height, width, channels)
    if len(inputs) != 1:
        raise UnsupportedModelError(
            f"Expected an image classifier with exactly one input; model {model.name!r} has {len(inputs)}."
        )
    shape = tuple(inputs[0].shape)
    if len(shape) != 4:
        raise UnsupportedModelError(
            f"Expected the model input to be images [batch, H, W, C]; received shape {shape}."
        )
    dims = shape[1:]
    if override is None:
        if any(d is None for d in dims):
            raise UnsupportedModelError(
                f"The model input has unknown dimensions {shape}; set model.input_shape "
                "= [H, W, C] in the export config."
            )
        height, width, channels = (int(d) for d in dims)
        return (height, width, channels)
    for i, (declared, wanted) in enumerate(zip(dims, override, strict=True)):
        if declared is not None and declared != wanted:
            raise UnsupportedModelError(
                f"model.input_shape {list(override)} conflicts with the model's input shape "
                f"{shape} at dimension {i + 1}."
            )
    height, width, channels = override
    return (height, width, channels)


def _symbolic_shape(model: Any, which: str) -> list[Any] | None:
    """The shape of the model's single symbolic input/output; None without a graph."""
    tensors = _symbolic_inputs(model) if which == "inputs" else getattr(model, "outputs", None)
    return list(tensors[0].shape) if tensors else None


class SaliencyExporter:
    """Builds, writes, verifies and publishes a saliency export of one Keras model.

    `export_model` covers the usual case; use the builder to inspect the logits head or
    the signatures, pass your own verification samples, or write several versions.

    Example:
        exporter = SaliencyExporter(model, ExportConfig(name="mnist"))
        print(exporter.head.describe())
        result = exporter.write("models/mnist", samples=x_test[:8])
    """

    def __init__(
        self,
        model: Any,
        config: ExportConfig | None = None,
        *,
        model_path: str | Path | None = None,
        logits_fn: Callable[[tf.Tensor], tf.Tensor] | None = None,
        probabilities: str | Callable[[tf.Tensor], tf.Tensor] = "softmax",
        head: LogitsHead | None = None,
        reference_probabilities: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        """Resolves the input shape and the logits head; raises if the model can't be explained.

        Args:
            model: A functional or Sequential Keras model (logits found in its graph); or,
                with `logits_fn`/`head`, any Keras model or `tf.Module` that tracks the
                variables the logits function reads (e.g. a subclassed model).
            config: Export settings; `config.input_shape` is required when the model has
                no symbolic input (subclassed models).
            model_path: The file the model came from, for the report's fingerprint.
            logits_fn: Explicit logits: images float32 [B,H,W,C] → logits [B,K], e.g.
                `lambda x: net.logits(x)`. See `exporter._logits.explicit_head`.
            probabilities: With `logits_fn`: `"softmax"`, `"sigmoid"` (one unit) or a
                callable logits → probabilities.
            head: A ready-made explicit `LogitsHead` (from `explicit_head`) instead of
                `logits_fn`; the hook for other model sources.
            reference_probabilities: With an explicit head: images (numpy) → the model's
                own probabilities; verification compares the exported `probabilities`
                with it (else with the activation of the eager logits).

        Raises:
            UnsupportedModelError: Not a single-input, single-output image classifier, or a
                subclassed model without `logits_fn`.
            LogitsNotFoundError: The logits cannot be located (suggests --logits-layer).
            ConfigError: Settings that an explicit head cannot honour (logits_layer,
                Grad-CAM, the evaluation gate) or class names of the wrong length.
        """
        from exporter._errors import ConfigError
        from exporter._reference import FunctionReference

        self.model = model
        self.config = config or ExportConfig()
        self.model_path = Path(model_path) if model_path is not None else None
        explicit = logits_fn is not None or head is not None
        if logits_fn is not None and head is not None:
            raise ConfigError("Pass either logits_fn or head, not both.")
        self.input_shape = _input_shape(model, self.config.input_shape, explicit=explicit)
        #: The eager reference verification uses for an explicit head (None: a logits copy
        #: of the Keras model is cloned instead).
        self.reference: FunctionReference | None = None
        #: More about the model for the report's `model` section (a SavedModel's signature…).
        self.model_details: dict[str, Any] = {}
        if explicit:
            layer_methods = [m for m in self.config.methods.enabled if _methods.get(m).needs_layer_graph]
            for setting, value in (
                ("logits_layer", self.config.logits_layer),
                (f"the {', '.join(layer_methods)} method", layer_methods or None),
                ("[evaluation] enabled", self.config.evaluation.enabled or None),
            ):
                if value:
                    raise ConfigError(
                        f"{setting} is not supported with explicit logits (logits_fn/head): the "
                        "exporter has no layer graph to look into. Remove it, or export a "
                        "functional model."
                    )
            if head is None and logits_fn is not None:  # `explicit`: one of the two was given
                head = explicit_head(logits_fn, self.input_shape, probabilities)
            if head is None:
                raise ConfigError("Pass logits_fn or head for an explicit head.")
            # A SavedModel source (exporter._saved_model_source) says how it found its logits.
            if head.kind != "explicit" and not head.kind.startswith("saved_model_"):
                raise ConfigError(
                    "Expected head to come from explicit_head (kind 'explicit') or a SavedModel "
                    f"source (kind 'saved_model_…'); received kind {head.kind!r}."
                )
            self.head: LogitsHead = head
            self.reference = FunctionReference(head.logits_fn, head.probabilities_fn, reference_probabilities)
        else:
            self.head = find_logits(model, self.config.logits_layer)
        if self.config.class_names is not None and len(self.config.class_names) != self.head.num_classes:
            raise ConfigError(
                f"model.class_names has {len(self.config.class_names)} names but the model "
                f"has {self.head.num_classes} classes."
            )
        self._check_named_head()
        #: Method name → what its `prepare` found in this model (e.g. Grad-CAM's layer view).
        self.method_views: dict[str, Any] = {}
        resolved = []
        for name in self.config.methods.enabled:
            params, view = _methods.get(name).prepare(model, self.head, self.config.methods.params_of(name))
            resolved.append(params)
            if view is not None:
                self.method_views[name] = view
        #: The methods with their parameters as resolved for this model (what is verified).
        self.methods: MethodsConfig = self.config.methods.replace_params(
            *(p for p in resolved if p != _methods.NoParams())
        )
        self.signatures = build_signatures(
            self.head,
            self.input_shape,
            self.config.reduction,
            self.methods,
            self.method_views,
            self.config.input,
            limits=self.config.limits,
        )

    def _check_named_head(self) -> None:
        """For a --logits-layer override, the logits must line up with the model's classes."""
        self.model_outputs_probabilities = self.head.kind not in ("logits_output", "named_layer", "explicit")
        if self.head.kind != "named_layer":
            return
        width = int(self.model.outputs[0].shape[-1])
        classes = 2 if width == 1 else width
        if self.head.num_classes != classes:
            raise UnsupportedModelError(
                f"--logits-layer {self.head.layer_name!r} outputs {self.head.num_classes} values "
                f"but the model predicts {classes} classes; name the layer whose outputs are "
                "the class logits."
            )
        try:
            detected = find_logits(self.model)
        except UnsupportedModelError:
            return
        # When the model itself ends in a softmax, its output must equal softmax(logits):
        # verification then catches a named layer that is not what the softmax consumes.
        self.model_outputs_probabilities = detected.kind in ("fused_softmax", "softmax_layer", "softmax_op")

    def archive(self) -> keras.export.ExportArchive:
        """A `keras.export.ExportArchive` with every signature as an endpoint."""
        archive = keras.export.ExportArchive()
        archive.track(self.model)
        for name, function in self.signatures.items():
            archive.add_endpoint(name, function)
        return archive

    def write_saved_model(self, export_dir: Path) -> None:
        """Writes the SavedModel, signature defaults, warmup requests and class names."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.archive().write_out(str(export_dir), verbose=False)
        defaults = input_defaults(self.config.methods, self.input_shape)
        record_signature_defaults(export_dir, defaults)
        write_warmup_requests(
            export_dir,
            model_name=self.config.name,
            signature_inputs={
                name: tuple(spec.name for spec in function.input_signature)
                for name, function in self.signatures.items()
            },
            input_shape=self.input_shape,
            batch_sizes=self.config.warmup_batch_sizes,
            seed=self.config.verification.seed,
            input_format=self.config.input.format,
            max_batch=self.signatures.limits.maxima(),
            defaults=defaults,
        )
        if self.config.class_names is not None:
            path = export_dir / CLASS_NAMES_ASSET
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(self.config.class_names) + "\n")

    def write(
        self,
        base_dir: str | Path,
        version: int | None = None,
        *,
        report_path: str | Path | None = None,
        samples: np.ndarray | None = None,
    ) -> ExportResult:
        """Writes `base_dir/<version>/` atomically, verified before it is published.

        Args:
            base_dir: The model's base path (TF Serving's `--model_base_path`).
            version: Version number; the next free one by default.
            report_path: Also write the JSON report here.
            samples: Verification inputs [N,H,W,C] as float model inputs (quantized to
                pixels for the uint8 and image_bytes formats); random ones by default.

        Returns:
            The published `ExportResult`.

        Raises:
            VersionExistsError: The version exists (nothing is overwritten).
            VerificationError: The written model failed verification (nothing is published).
            EvaluationError: `[evaluation] enabled` and a method failed the faithfulness
                gate (nothing is published).
        """
        base_dir = Path(base_dir)
        version = next_version(base_dir) if version is None else version
        with staged_version(base_dir, version) as staging:
            logger.info("Writing SavedModel (logits: %s) to %s", self.head.describe(), staging)
            self.write_saved_model(staging)
            logger.info("Verifying through the TF1 session loader")
            # The C++ loader's process loads the export while the TF1 checks run, then
            # replays their runs: TF Serving's loader must give the TF1 session's outputs.
            with CppLoaderCheck(staging) as cpp_check, recording_runs() as tf1_runs:
                figures = verify_export(
                    staging,
                    self.model,
                    reduction=self.config.reduction,
                    config=self.config.verification,
                    input_shape=self.input_shape,
                    logits_layer=self.config.logits_layer,
                    model_outputs_probabilities=self.model_outputs_probabilities,
                    samples=samples,
                    methods=self.methods,
                    input_config=self.config.input,
                    reference=self.reference,
                )
                logger.info("Verifying through TF's C++ loader (TF_LoadSessionFromSavedModel)")
                figures["cpp_loader"] = cpp_check.verify(tf1_runs)
            evaluation = None
            if self.config.evaluation.enabled:
                # Imported here: the evaluation code is only needed when the gate is on.
                from exporter.evaluation import run_gate

                logger.info("Evaluating the explanations (randomization test, deletion/insertion)")
                evaluation = run_gate(
                    staging,
                    self.model,
                    samples,
                    input_shape=self.input_shape,
                    reduction=self.config.reduction,
                    methods_config=self.config.methods,
                    logits_layer=self.config.logits_layer,
                    config=self.config.evaluation,
                )
            report = build_report(
                export={
                    "base_dir": str(base_dir.resolve()),
                    "version": version,
                    "path": str((base_dir / str(version)).resolve()),
                    "reduction": self.config.reduction,
                    "input": dataclasses.asdict(self.config.input),
                    "methods": to_mapping(self.config.methods),
                    "warmup_file": str(WARMUP_FILE),
                    "warmup_batch_sizes": list(self.config.warmup_batch_sizes),
                    "class_names": list(self.config.class_names) if self.config.class_names else None,
                },
                model={
                    "name": self.config.name,
                    "source": str(self.model_path) if self.model_path else None,
                    "hash": model_fingerprint(self.model, self.model_path),
                    "keras_input_shape": _symbolic_shape(self.model, "inputs"),
                    "keras_output_shape": _symbolic_shape(self.model, "outputs"),
                    "input_shape": list(self.input_shape),
                    "num_classes": self.head.num_classes,
                    "logits": {"kind": self.head.kind, "layer": self.head.layer_name},
                    **self.model_details,
                },
                signatures=signature_specs(staging),
                verification=figures,
                limits=self.signatures.limits_report(),
                **({"evaluation": evaluation} if evaluation is not None else {}),
            )
            # For `saliency-export verify`: the published bytes, and how the samples were made.
            report["export_files"] = {"sha256": export_files_sha256(staging, [Path(REPORT_ASSET)]), "algorithm": FILES_HASH}
            report["verification"]["settings"] = {**dataclasses.asdict(self.config.verification), "caller_samples": samples is not None}
            write_report(report, staging / REPORT_ASSET)
        final = base_dir / str(version)
        logger.info("Published %s", final)
        if report_path is not None:
            write_report(report, Path(report_path))
        return ExportResult(final, version, report)


def _directory_exporter(path: Path, config: ExportConfig | None, options: dict[str, Any]) -> SaliencyExporter:
    """A model directory (a SavedModel) goes to its own source module.

    The hook: `exporter._saved_model_source.saved_model_exporter(path, config, **options)`
    returns a `SaliencyExporter` built with an explicit head (`head=explicit_head(...)`,
    `reference_probabilities=...`), so everything after loading is shared with Keras models.
    """
    try:
        from exporter._saved_model_source import saved_model_exporter
    except ImportError as error:
        raise ModelLoadError(
            f"{path} is a directory; expected a Keras model file ending in .keras, .h5 or "
            ".hdf5 (SavedModel directories are not supported by this installation)."
        ) from error
    return saved_model_exporter(path, config, **options)


def export_model(
    model_or_path: Any,
    output_dir: str | Path,
    *,
    version: int | None = None,
    config: ExportConfig | str | Path | None = None,
    report_path: str | Path | None = None,
    samples: np.ndarray | None = None,
    safe_mode: bool = True,
    logits_fn: Callable[[tf.Tensor], tf.Tensor] | None = None,
    probabilities: str | Callable[[tf.Tensor], tf.Tensor] = "softmax",
    source_options: dict[str, Any] | None = None,
    custom_objects: dict[str, Any] | None = None,
) -> Path:
    """Exports a Keras classifier as a verified, TF-Serving-ready SavedModel version.

    Args:
        model_or_path: A Keras model, or a `.keras`/`.h5` file (or a SavedModel
            directory, handled by `exporter._saved_model_source`).
        output_dir: The model's base path; the export goes to `output_dir/<version>/`.
        version: Version number; the next free integer by default.
        config: An `ExportConfig` or the path of a TOML config file.
        report_path: Also write the JSON export report here.
        samples: Verification inputs [N,H,W,C] (random by default).
        safe_mode: Keras safe mode when loading from a file (refuses Lambda layers).
        logits_fn: Explicit logits for a model without a functional graph (subclassed):
            images [B,H,W,C] → logits [B,K]; needs `config.input_shape`.
        probabilities: With `logits_fn`: `"softmax"`, `"sigmoid"` or a callable.
        source_options: Options of a directory source (e.g. its signature name).
        custom_objects: Custom classes/functions a model file needs (name → object).

    Returns:
        The published version directory.

    Raises:
        ExportError: Any failure (a subclass says which); nothing is published then.
    """
    if isinstance(config, str | Path):
        config = load_config(config)
    model_path = None
    if isinstance(model_or_path, str | Path):
        model_path = Path(model_or_path)
        if model_path.is_dir():
            exporter = _directory_exporter(model_path, config, dict(source_options or {}))
            return exporter.write(output_dir, version, report_path=report_path, samples=samples).path
        model = load_keras_model(model_path, safe_mode=safe_mode, custom_objects=custom_objects)
    else:
        model = model_or_path
    exporter = SaliencyExporter(
        model, config, model_path=model_path, logits_fn=logits_fn, probabilities=probabilities
    )
    return exporter.write(output_dir, version, report_path=report_path, samples=samples).path
