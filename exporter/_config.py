"""Export configuration: a typed, validated view of `configs/export.toml`.

Read with the standard library's `tomllib`; every key is checked so that a typo fails
loudly instead of being silently ignored.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from exporter import _contract as c
from exporter._errors import ConfigError

__all__ = [
    "METHODS",
    "REDUCTIONS",
    "EvaluationConfig",
    "ExportConfig",
    "LimitsConfig",
    "MethodsConfig",
    "VerificationConfig",
    "load_config",
]

#: Channel reductions for the saliency map (gradient [H,W,C] → map [H,W]).
REDUCTIONS: tuple[str, ...] = ("max_abs", "max", "sum_abs", "l2")

#: Explanation methods that can be exported; `vanilla` (the `explain` signature) always is.
METHODS: tuple[str, ...] = ("vanilla", "smoothgrad", "integrated_gradients", "gradient_x_input", "gradcam")


@dataclasses.dataclass(frozen=True)
class MethodsConfig:
    """Which explanation signatures are exported, and their parameters (fixed at export).

    Attributes:
        enabled: Methods to export, from `METHODS`; `vanilla` is added if missing.
        internal_batch: SmoothGrad/IG evaluate this many copies of each image per
            in-graph step, so peak memory is O(batch × internal_batch), whatever the
            sample or step count.
        smoothgrad_samples: n, the noisy copies averaged by SmoothGrad.
        smoothgrad_noise: σ as a fraction of the input range (0 gives vanilla gradients).
        smoothgrad_input_range: (low, high) of the model's inputs; σ = noise × (high − low).
        smoothgrad_seed: Seed of the stateless noise (same request → same answer).
        ig_steps: m, the integration intervals of Integrated Gradients (trapezoidal rule,
            m + 1 gradient evaluations).
        ig_baseline: The constant baseline image value (0 = black).
        gradcam_layer: The spatial layer Grad-CAM explains; by default the last layer
            whose output is [batch, h, w, channels].
    """

    enabled: tuple[str, ...] = ("vanilla",)
    internal_batch: int = 32
    smoothgrad_samples: int = 16
    smoothgrad_noise: float = 0.15
    smoothgrad_input_range: tuple[float, float] = (0.0, 1.0)
    smoothgrad_seed: int = 0
    ig_steps: int = 64
    ig_baseline: float = 0.0
    gradcam_layer: str | None = None

    def __post_init__(self) -> None:
        unknown = [m for m in self.enabled if m not in METHODS]
        if unknown:
            raise ConfigError(
                f"Unknown explanation method {unknown[0]!r}; expected some of {', '.join(METHODS)}."
            )
        # vanilla first and always; order otherwise as in METHODS, no duplicates.
        object.__setattr__(self, "enabled", tuple(m for m in METHODS if m in ("vanilla", *self.enabled)))
        for key in ("internal_batch", "smoothgrad_samples", "ig_steps"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1; received {getattr(self, key)}.")
        if not (math.isfinite(self.smoothgrad_noise) and self.smoothgrad_noise >= 0):
            raise ConfigError(f"smoothgrad.noise must be a finite number >= 0; received {self.smoothgrad_noise}.")
        low, high = self.smoothgrad_input_range
        if not low < high:
            raise ConfigError(f"smoothgrad.input_range must be [low, high] with low < high; received {[low, high]}.")


#: Formats of the signatures' `images` input (`[input] format`, `--input-format`).
INPUT_FORMATS: tuple[str, ...] = ("float32", "uint8", "image_bytes")


@dataclasses.dataclass(frozen=True)
class InputConfig:
    """What clients send as `images`; the model always sees float32 [B,H,W,C].

    For `uint8` ([B,H,W,C] pixels) and `image_bytes` (tf.string [B] of PNG/JPEG/BMP
    bytes, decoded and resized in the graph) the model input is `pixel * scale + offset`.

    Attributes:
        format: One of `INPUT_FORMATS`.
        scale: Multiplies the pixel values (default 1/255); uint8 and image_bytes only.
        offset: Added after scaling (default 0); uint8 and image_bytes only.
        max_pixels: image_bytes only: the largest width × height an image may declare in
            its header; larger ones are refused before decoding. None: the default
            relative to the model's input (see `exporter._limits.default_max_pixels`).
        max_image_bytes: image_bytes only: the largest encoded image accepted. None: the
            default for `max_pixels` (see `exporter._limits.default_max_image_bytes`).
    """

    format: str = "float32"
    scale: float | None = None
    offset: float | None = None
    max_pixels: int | None = None
    max_image_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.format not in INPUT_FORMATS:
            raise ConfigError(
                f"input.format must be one of {', '.join(INPUT_FORMATS)}; received {self.format!r}."
            )
        for key in ("max_pixels", "max_image_bytes"):
            value = getattr(self, key)
            if value is None:
                continue
            if self.format != "image_bytes":
                raise ConfigError(
                    f"input.{key} applies to the image_bytes format (decoded in the graph); "
                    f"input.format is {self.format!r}. Remove it or set input.format = \"image_bytes\"."
                )
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"input.{key} must be an integer >= 1; received {value!r}.")
        if self.format == "float32":
            if self.scale is not None or self.offset is not None:
                raise ConfigError(
                    "input.scale and input.offset apply to the uint8 and image_bytes formats; "
                    "float32 images are the model's input as they are. Remove them or set input.format."
                )
            return
        scale = 1.0 / 255.0 if self.scale is None else float(self.scale)
        offset = 0.0 if self.offset is None else float(self.offset)
        if not (math.isfinite(scale) and scale != 0 and math.isfinite(offset)):
            raise ConfigError(f"input.scale must be finite and non-zero, input.offset finite; received {scale}, {offset}.")
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "offset", offset)


#: Signature names a `[limits]` entry may name.
SIGNATURE_NAMES: tuple[str, ...] = (c.SERVING_DEFAULT, *c.EXPLAIN_SIGNATURES.values())


@dataclasses.dataclass(frozen=True)
class LimitsConfig:
    """Per-request cost bounds, enforced in each signature's graph (`[limits]`).

    Each signature refuses a batch larger than its maximum with INVALID_ARGUMENT before
    any work. By default the maximum is what fits `memory_budget_mib`, given the memory
    one image costs that signature on this model (measured at export time, see
    `exporter._limits`), and never more than `max_images`.

    Attributes:
        memory_budget_mib: Memory one request may take, in MiB.
        max_images: Ceiling of every signature's batch (images per request).
        max_batch: Explicit maxima, signature name → images; they replace the measured
            default (and may exceed `max_images`).
        floor: Set by `ExportConfig`, not read from TOML: signature name → the largest
            batch the exporter itself runs it at (verification, the evaluation gate); a
            measured maximum is never below it, or the export could not verify itself.
    """

    memory_budget_mib: int = 2048
    max_images: int = 1024
    max_batch: tuple[tuple[str, int], ...] = ()
    floor: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        for key in ("memory_budget_mib", "max_images"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"limits.{key} must be an integer >= 1; received {value!r}.")
        if isinstance(self.max_batch, Mapping):
            object.__setattr__(self, "max_batch", tuple(sorted(self.max_batch.items())))
        for name, value in self.max_batch:
            if name not in SIGNATURE_NAMES:
                raise ConfigError(
                    f"Unknown signature {name!r} in [limits]; expected memory_budget_mib, "
                    f"max_images or a signature name: {', '.join(SIGNATURE_NAMES)}."
                )
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"limits.{name} must be an integer >= 1; received {value!r}.")

    def floor_of(self, signature: str) -> int:
        """The smallest maximum `signature` may get (1 unless `floor` says more)."""
        return dict(self.floor).get(signature, 1)

    def explicit(self, signature: str) -> int | None:
        """The configured maximum batch of `signature`, or None for the measured default."""
        return dict(self.max_batch).get(signature)


@dataclasses.dataclass(frozen=True)
class VerificationConfig:
    """How the written SavedModel is checked before it is published.

    Attributes:
        num_samples: Sample inputs used for parity checks.
        logits_atol: Absolute tolerance, exported logits vs the Keras model.
        probabilities_atol: Absolute tolerance, exported probabilities vs the Keras model.
        saliency_atol: Absolute tolerance, exported saliency vs the eager reference (maps
            are in [0, 1]).
        fd_positions: Input positions checked against central finite differences.
        fd_epsilon: Largest step of the central differences, in input units (eps/10 and
            eps/100 are tried too, since a step across a ReLU kink measures another piece).
        fd_rtol: Tolerance of the finite-difference check, relative to the largest
            gradient magnitude of the example.
        sample_range: Range [low, high] of the uniform random sample inputs.
        seed: Seed of the sample inputs.
    """

    num_samples: int = 4
    logits_atol: float = 1e-4
    probabilities_atol: float = 1e-5
    saliency_atol: float = 1e-3
    fd_positions: int = 8
    fd_epsilon: float = 1e-2
    fd_rtol: float = 0.05
    sample_range: tuple[float, float] = (0.0, 1.0)
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """The faithfulness gate run before publishing (`[evaluation]`, `saliency-export --evaluate`).

    See `exporter.evaluation` for what the scores mean.

    Attributes:
        enabled: Evaluate every exported method before publishing; a failed check fails
            the export and nothing is published.
        data: Evaluation images: `"mnist"` (MNIST test digits) or a `.npy` file
            [N,H,W,C]; by default the verification samples passed to the export.
        num_images: At most this many images are evaluated.
        steps: Deletion/insertion steps (curves have steps + 1 points).
        max_randomization_spearman: A method fails the randomization test when the mean
            Spearman correlation of |maps| between the original model and the fully
            randomized copy is above this.
        min_deletion_gain_over_random: A method fails when (random-order deletion AUC −
            its deletion AUC) is not above this: no better than deleting at random.
        blur_sigma: σ in pixels of the blurred image insertion starts from.
        seed: Seed of the random order, tie-breaks and re-initialization.
    """

    enabled: bool = False
    data: str | None = None
    num_images: int = 32
    steps: int = 20
    max_randomization_spearman: float = 0.5
    min_deletion_gain_over_random: float = 0.0
    blur_sigma: float = 3.0
    seed: int = 0

    def __post_init__(self) -> None:
        for key in ("num_images", "steps"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"evaluation.{key} must be an integer >= 1; received {value!r}.")
        for key in ("max_randomization_spearman", "min_deletion_gain_over_random", "blur_sigma"):
            if not math.isfinite(getattr(self, key)):
                raise ConfigError(f"evaluation.{key} must be a finite number; received {getattr(self, key)}.")
        if self.blur_sigma <= 0:
            raise ConfigError(f"evaluation.blur_sigma must be > 0; received {self.blur_sigma}.")


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """Everything that shapes an export, apart from where it is written.

    Attributes:
        name: Model name (TF Serving's `model_spec.name`, used in warmup requests).
        input_shape: (H, W, C) override for models whose input has unknown dimensions.
        class_names: Optional class names, written as `assets/class_names.txt`.
        logits_layer: Name of the layer whose output are the logits (overrides detection).
        reduction: Channel reduction of the saliency map, one of `REDUCTIONS`.
        input: The format of the signatures' `images` input (float32 by default).
        warmup_batch_sizes: Batch sizes of the warmup requests written per signature.
        verification: Verification settings.
        methods: Which explanation signatures are exported, and their parameters.
        evaluation: The opt-in faithfulness gate (sanity checks before publishing).
        limits: Per-request cost bounds of the signatures.
    """

    name: str = "model"
    input_shape: tuple[int, int, int] | None = None
    class_names: tuple[str, ...] | None = None
    logits_layer: str | None = None
    reduction: str = "max_abs"
    input: InputConfig = dataclasses.field(default_factory=InputConfig)
    warmup_batch_sizes: tuple[int, ...] = (1, 8)
    verification: VerificationConfig = dataclasses.field(default_factory=VerificationConfig)
    methods: MethodsConfig = dataclasses.field(default_factory=MethodsConfig)
    evaluation: EvaluationConfig = dataclasses.field(default_factory=EvaluationConfig)
    limits: LimitsConfig = dataclasses.field(default_factory=LimitsConfig)

    def __post_init__(self) -> None:
        if self.reduction not in REDUCTIONS:
            raise ConfigError(
                f"saliency.reduction must be one of {', '.join(REDUCTIONS)}; "
                f"received {self.reduction!r}."
            )
        exported = {c.SERVING_DEFAULT, *(c.EXPLAIN_SIGNATURES[m] for m in self.methods.enabled)}
        # The exporter runs the signatures itself: verification at num_samples (serving_default
        # also in chunks of 8 for finite differences), the gate at num_images (serving_default
        # at up to 1024 rows per call for deletion/insertion).
        verify = max(self.verification.num_samples, 8)
        gate = self.evaluation.num_images if self.evaluation.enabled else 0
        floor = {name: max(verify, gate) for name in exported}
        if self.evaluation.enabled:
            floor[c.SERVING_DEFAULT] = max(floor[c.SERVING_DEFAULT], 1024)
        object.__setattr__(self, "limits", dataclasses.replace(self.limits, floor=tuple(sorted(floor.items()))))
        for name, maximum in self.limits.max_batch:
            if name not in exported:
                raise ConfigError(
                    f"limits.{name} is set but {name} is not exported; the export has "
                    f"{', '.join(sorted(exported))} (add its method to methods.enabled)."
                )
            if maximum < self.verification.num_samples:
                raise ConfigError(
                    f"limits.{name} = {maximum} is below verification.num_samples = "
                    f"{self.verification.num_samples}: the export is verified at that batch. "
                    "Lower verification.num_samples or raise the limit."
                )

    def replace(self, **changes: Any) -> ExportConfig:
        """Returns a copy with `changes` applied (validated like the original)."""
        return dataclasses.replace(self, **changes)


# TOML table → key → (attribute, expected type description, converter)
def _int(key: str, value: Any, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key} must be an integer; received {value!r} ({type(value).__name__}).")
    if value < minimum:
        raise ConfigError(f"{key} must be >= {minimum}; received {value}.")
    return value


def _float(key: str, value: Any, *, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key} must be a number; received {value!r} ({type(value).__name__}).")
    value = float(value)
    if not math.isfinite(value) or (positive and value <= 0):
        raise ConfigError(f"{key} must be a finite number > 0; received {value}.")
    return value


def _str(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key} must be a non-empty string; received {value!r}.")
    return value


def _int_list(key: str, value: Any, *, length: int | None = None) -> tuple[int, ...]:
    if not isinstance(value, list) or (length is not None and len(value) != length):
        expected = f"a list of {length} integers" if length else "a list of integers"
        raise ConfigError(f"{key} must be {expected}; received {value!r}.")
    return tuple(_int(f"{key}[{i}]", v, minimum=1) for i, v in enumerate(value))


def _str_list(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{key} must be a non-empty list of strings; received {value!r}.")
    return tuple(_str(f"{key}[{i}]", v) for i, v in enumerate(value))


def _check_keys(table: str, data: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        where = f"[{table}]" if table else "the top level"
        raise ConfigError(
            f"Unknown key {table + '.' if table else ''}{unknown[0]} in {where}; "
            f"expected one of: {', '.join(sorted(allowed))}."
        )


def _table(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] must be a table; received {value!r}.")
    return value


def config_from_mapping(data: Mapping[str, Any]) -> ExportConfig:
    """Builds an `ExportConfig` from parsed TOML.

    Args:
        data: The parsed document (tables `model`, `saliency`, `warmup`, `verification`).

    Returns:
        The validated configuration.

    Raises:
        ConfigError: On an unknown key, a wrong type or an invalid value; the message
            names the key.
    """
    _check_keys(
        "",
        data,
        {"model", "saliency", "warmup", "verification", "methods", "smoothgrad", "integrated_gradients", "evaluation", "gradcam", "input", "limits"},
    )
    kwargs: dict[str, Any] = {}

    model = _table(data, "model")
    _check_keys("model", model, {"name", "input_shape", "class_names", "logits_layer"})
    if "name" in model:
        kwargs["name"] = _str("model.name", model["name"])
    if "input_shape" in model:
        kwargs["input_shape"] = _int_list("model.input_shape", model["input_shape"], length=3)
    if "class_names" in model:
        kwargs["class_names"] = _str_list("model.class_names", model["class_names"])
    if "logits_layer" in model:
        kwargs["logits_layer"] = _str("model.logits_layer", model["logits_layer"])

    saliency = _table(data, "saliency")
    _check_keys("saliency", saliency, {"reduction"})
    if "reduction" in saliency:
        kwargs["reduction"] = _str("saliency.reduction", saliency["reduction"])

    inputs = _table(data, "input")
    _check_keys("input", inputs, {"format", "scale", "offset", "max_pixels", "max_image_bytes"})
    ikwargs: dict[str, Any] = {}
    if "format" in inputs:
        ikwargs["format"] = _str("input.format", inputs["format"])
    for key in ("scale", "offset"):
        if key in inputs:
            ikwargs[key] = _float(f"input.{key}", inputs[key], positive=False)
    for key in ("max_pixels", "max_image_bytes"):
        if key in inputs:
            ikwargs[key] = _int(f"input.{key}", inputs[key], minimum=1)
    kwargs["input"] = InputConfig(**ikwargs)

    warmup = _table(data, "warmup")
    _check_keys("warmup", warmup, {"batch_sizes"})
    if "batch_sizes" in warmup:
        kwargs["warmup_batch_sizes"] = _int_list("warmup.batch_sizes", warmup["batch_sizes"])

    verification = _table(data, "verification")
    fields = {f.name: f for f in dataclasses.fields(VerificationConfig)}
    _check_keys("verification", verification, set(fields))
    vkwargs: dict[str, Any] = {}
    for key, value in verification.items():
        full = f"verification.{key}"
        if key in ("num_samples", "fd_positions"):
            vkwargs[key] = _int(full, value, minimum=1)
        elif key == "seed":
            vkwargs[key] = _int(full, value)
        elif key == "sample_range":
            if (
                not isinstance(value, list)
                or len(value) != 2
                or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
                or not value[0] < value[1]
            ):
                raise ConfigError(f"{full} must be [low, high] with low < high; received {value!r}.")
            vkwargs[key] = (float(value[0]), float(value[1]))
        else:
            vkwargs[key] = _float(full, value)
    kwargs["verification"] = VerificationConfig(**vkwargs)
    kwargs["methods"] = _methods_from_mapping(data)
    kwargs["evaluation"] = _evaluation_from_mapping(data)
    kwargs["limits"] = _limits_from_mapping(data)
    return ExportConfig(**kwargs)


def _limits_from_mapping(data: Mapping[str, Any]) -> LimitsConfig:
    """Table `[limits]` → `LimitsConfig` (signature names are checked by `LimitsConfig`)."""
    table = _table(data, "limits")
    _check_keys("limits", table, {"memory_budget_mib", "max_images", *SIGNATURE_NAMES})
    kwargs: dict[str, Any] = {}
    per_signature: dict[str, int] = {}
    for key, value in table.items():
        if key in ("memory_budget_mib", "max_images"):
            kwargs[key] = _int(f"limits.{key}", value, minimum=1)
        else:
            per_signature[key] = _int(f"limits.{key}", value, minimum=1)
    return LimitsConfig(max_batch=tuple(sorted(per_signature.items())), **kwargs)


def _evaluation_from_mapping(data: Mapping[str, Any]) -> EvaluationConfig:
    """Table `[evaluation]` → `EvaluationConfig`."""
    table = _table(data, "evaluation")
    _check_keys("evaluation", table, {f.name for f in dataclasses.fields(EvaluationConfig)})
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        full = f"evaluation.{key}"
        if key == "enabled":
            if not isinstance(value, bool):
                raise ConfigError(f"{full} must be true or false; received {value!r}.")
            kwargs[key] = value
        elif key == "data":
            kwargs[key] = _str(full, value)
        elif key in ("num_images", "steps"):
            kwargs[key] = _int(full, value, minimum=1)
        elif key == "seed":
            kwargs[key] = _int(full, value)
        else:
            kwargs[key] = _float(full, value, positive=key == "blur_sigma")
    return EvaluationConfig(**kwargs)


def _range(key: str, value: Any) -> tuple[float, float]:
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        or not value[0] < value[1]
    ):
        raise ConfigError(f"{key} must be [low, high] with low < high; received {value!r}.")
    return (float(value[0]), float(value[1]))


def _methods_from_mapping(data: Mapping[str, Any]) -> MethodsConfig:
    """Tables `[methods]`, `[smoothgrad]`, `[integrated_gradients]`, `[gradcam]` → `MethodsConfig`."""
    kwargs: dict[str, Any] = {}
    methods = _table(data, "methods")
    _check_keys("methods", methods, {"enabled", "internal_batch"})
    if "enabled" in methods:
        kwargs["enabled"] = _str_list("methods.enabled", methods["enabled"])
    if "internal_batch" in methods:
        kwargs["internal_batch"] = _int("methods.internal_batch", methods["internal_batch"], minimum=1)

    smoothgrad = _table(data, "smoothgrad")
    _check_keys("smoothgrad", smoothgrad, {"samples", "noise", "input_range", "seed"})
    if "samples" in smoothgrad:
        kwargs["smoothgrad_samples"] = _int("smoothgrad.samples", smoothgrad["samples"], minimum=1)
    if "noise" in smoothgrad:
        noise = _float("smoothgrad.noise", smoothgrad["noise"], positive=False)
        if noise < 0:
            raise ConfigError(f"smoothgrad.noise must be >= 0; received {noise}.")
        kwargs["smoothgrad_noise"] = noise
    if "input_range" in smoothgrad:
        kwargs["smoothgrad_input_range"] = _range("smoothgrad.input_range", smoothgrad["input_range"])
    if "seed" in smoothgrad:
        kwargs["smoothgrad_seed"] = _int("smoothgrad.seed", smoothgrad["seed"])

    ig = _table(data, "integrated_gradients")
    _check_keys("integrated_gradients", ig, {"steps", "baseline"})
    if "steps" in ig:
        kwargs["ig_steps"] = _int("integrated_gradients.steps", ig["steps"], minimum=1)
    if "baseline" in ig:
        kwargs["ig_baseline"] = _float("integrated_gradients.baseline", ig["baseline"], positive=False)

    gradcam = _table(data, "gradcam")
    _check_keys("gradcam", gradcam, {"layer"})
    if "layer" in gradcam:
        kwargs["gradcam_layer"] = _str("gradcam.layer", gradcam["layer"])
    return MethodsConfig(**kwargs)


def load_config(path: str | Path) -> ExportConfig:
    """Reads and validates an export configuration file.

    Args:
        path: A TOML file (see `configs/export.toml` for every key, documented).

    Returns:
        The validated configuration.

    Raises:
        ConfigError: If the file is missing, is not valid TOML, or holds an invalid key.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"Config file {path} does not exist.") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"Config file {path} is not valid TOML: {error}") from None
    try:
        return config_from_mapping(data)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
