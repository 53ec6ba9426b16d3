"""Export configuration: frozen dataclasses shaped like the tables of `configs/export.toml`.

The dataclasses are the schema and the only place values are validated (`__post_init__`):
`load_config` reads TOML with the standard library's `tomllib` and hands the tables to the one
generic reader (`exporter._config_loader.from_mapping`), so a config built in Python and the
same values in a file are accepted or refused alike, with the same message. An unknown key
fails loudly, naming the key, its table and the accepted keys.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from exporter import methods as _methods
from exporter._config_loader import (
    EXTRA,
    KEY,
    NOT_READ,
    TABLE,
    TABLES,
    check_bool,
    check_int,
    check_int_tuple,
    check_number,
    check_optional_str,
    check_range,
    check_str,
    check_str_tuple,
    from_mapping,
    set_field,
)
from exporter._errors import ConfigError
from serving_client import contract as c

__all__ = [
    "INPUT_FORMATS",
    "REDUCTIONS",
    "EvaluationConfig",
    "ExportConfig",
    "InputConfig",
    "LimitsConfig",
    "MethodsConfig",
    "VerificationConfig",
    "config_from_mapping",
    "load_config",
    "methods_from_record",
    "signature_names",
]

#: Channel reductions for the saliency map (gradient [H,W,C] → map [H,W]).
REDUCTIONS: tuple[str, ...] = ("max_abs", "max", "sum_abs", "l2")

#: Formats of the signatures' `images` input (`[input] format`, `--input-format`).
INPUT_FORMATS: tuple[str, ...] = c.INPUT_FORMATS

# Keys of the flat layout before each method had its own table (old key → where it is now).
_FLAT_METHOD_KEYS: dict[str, tuple[str, str]] = {
    "smoothgrad_samples": ("smoothgrad", "samples"),
    "smoothgrad_noise": ("smoothgrad", "noise"),
    "smoothgrad_input_range": ("smoothgrad", "input_range"),
    "smoothgrad_seed": ("smoothgrad", "seed"),
    "ig_steps": ("integrated_gradients", "steps"),
    "ig_baseline": ("integrated_gradients", "baseline"),
    "gradcam_layer": ("gradcam", "layer"),
}


def signature_names() -> tuple[str, ...]:
    """Every signature an export may have: serving_default and one per registered method."""
    return (c.SERVING_DEFAULT, *(m.signature for m in _methods.registry()))


@dataclasses.dataclass(frozen=True)
class MethodsConfig:
    """`[methods]`: which explanation signatures are exported, and their parameters.

    Each method with parameters has its own table, `[methods.<name>]`, read into the
    parameters dataclass of its module (e.g. `[methods.smoothgrad]` →
    `exporter.methods.SmoothGradParams`).

    Example:
        MethodsConfig(enabled=("smoothgrad",), params=[SmoothGradParams(samples=8)])

    Attributes:
        enabled: Methods to export, from `exporter.methods.names()`; `vanilla` is added if
            missing; kept in registry order, without duplicates.
        internal_batch: Methods that evaluate many copies of each image (SmoothGrad, IG)
            evaluate this many per in-graph step, so peak memory is O(batch ×
            internal_batch), whatever the sample or step count.
        request_inputs: Whether the methods' signatures take their optional per-request
            parameters (`steps`, `samples`, `noise`, `baseline`; each method's
            `request_inputs`). False exports the signatures as before they existed (images and
            target_class only), e.g. while clients that do not send them are served with
            request batching on (docs/production.md#batching-and-target_class).
        params: Method name → its parameters, for every registered method that has
            parameters (defaults filled in). Given as a mapping or as an iterable of
            parameter objects (each names its method by its type).
    """

    RENAMED: ClassVar[Mapping[str, str]] = {
        old: f"[methods.{table}] {key}" for old, (table, key) in _FLAT_METHOD_KEYS.items()
    }

    enabled: tuple[str, ...] = (c.VANILLA,)
    internal_batch: int = 32
    request_inputs: bool = True
    params: Mapping[str, Any] = dataclasses.field(
        default_factory=dict, metadata={TABLES: _methods.params_types}
    )

    def __post_init__(self) -> None:
        enabled = check_str_tuple("methods.enabled", self.enabled, allow_empty=True)
        for name in enabled:
            _methods.get(name)  # raises naming the unknown method and the known ones
        # vanilla first and always; registry order otherwise, no duplicates.
        set_field(self, "enabled", tuple(n for n in _methods.names() if n in (c.VANILLA, *enabled)))
        check_int("methods.internal_batch", self.internal_batch, minimum=1)
        check_bool("methods.request_inputs", self.request_inputs)
        set_field(self, "params", _params_by_method(self.params))

    def params_of(self, name: str) -> Any:
        """The parameters of method `name` (a `NoParams()` for a method without any)."""
        method = _methods.get(name)
        return self.params.get(name, method.params_type())

    def request_inputs_of(self, name: str) -> tuple[Any, ...]:
        """The per-request inputs method `name`'s signature takes (none if `request_inputs` is off)."""
        return _methods.get(name).request_inputs if self.request_inputs else ()

    def replace_params(self, *params: Any) -> MethodsConfig:
        """A copy with these parameter objects replacing those of their methods."""
        return dataclasses.replace(self, params={**self.params, **_params_by_method(params, fill=False)})


def _params_by_method(params: Mapping[str, Any] | Iterable[Any], *, fill: bool = True) -> dict[str, Any]:
    """Normalizes `MethodsConfig.params` to {method: params}, in registry order."""
    types = _methods.params_types()
    if isinstance(params, Mapping):
        given = dict(params)
    else:
        by_type = {t: name for name, t in types.items()}
        given = {}
        for item in params:
            if type(item) not in by_type:
                raise ConfigError(
                    f"methods.params: {item!r} is not the parameters of a registered method; expected "
                    f"instances of {', '.join(t.__name__ for t in types.values())}."
                )
            given[by_type[type(item)]] = item
    for name, value in given.items():
        if name not in types:
            raise ConfigError(
                f"methods.params has an entry for {name!r}, which is not a method with parameters; "
                f"methods with parameters: {', '.join(types)}."
            )
        if not isinstance(value, types[name]):
            raise ConfigError(
                f"methods.params[{name!r}] must be a {types[name].__name__}; received {value!r}."
            )
    if not fill:
        return given
    return {name: given.get(name, cls()) for name, cls in types.items()}


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

    format: str = c.FLOAT32
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
            check_int(f"input.{key}", value, minimum=1)
        if self.format == "float32":
            if self.scale is not None or self.offset is not None:
                raise ConfigError(
                    "input.scale and input.offset apply to the uint8 and image_bytes formats; "
                    "float32 images are the model's input as they are. Remove them or set input.format."
                )
            return
        scale = 1.0 / 255.0 if self.scale is None else check_number("input.scale", self.scale)
        offset = 0.0 if self.offset is None else check_number("input.offset", self.offset)
        if scale == 0:
            raise ConfigError(f"input.scale must be finite and non-zero; received {scale}.")
        set_field(self, "scale", scale)
        set_field(self, "offset", offset)


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
    max_batch: tuple[tuple[str, int], ...] = dataclasses.field(default=(), metadata={EXTRA: True})
    floor: tuple[tuple[str, int], ...] = dataclasses.field(default=(), metadata={NOT_READ: True})

    def __post_init__(self) -> None:
        for key in ("memory_budget_mib", "max_images"):
            check_int(f"limits.{key}", getattr(self, key), minimum=1)
        if isinstance(self.max_batch, Mapping):
            set_field(self, "max_batch", tuple(sorted(self.max_batch.items())))
        names = signature_names()
        for name, value in self.max_batch:
            if name not in names:
                raise ConfigError(
                    f"Unknown key limits.{name} in [limits]; expected one of: memory_budget_mib, "
                    f"max_images or a signature name: {', '.join(names)}."
                )
            check_int(f"limits.{name}", value, minimum=1)

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

    def __post_init__(self) -> None:
        # At least one sample: a verification of no inputs would publish an unchecked export.
        for key in ("num_samples", "fd_positions"):
            check_int(f"verification.{key}", getattr(self, key), minimum=1)
        check_int("verification.seed", self.seed, minimum=0)
        for key in ("logits_atol", "probabilities_atol", "saliency_atol", "fd_epsilon", "fd_rtol"):
            set_field(self, key, check_number(f"verification.{key}", getattr(self, key), positive=True))
        set_field(self, "sample_range", check_range("verification.sample_range", self.sample_range))


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """The faithfulness gate run before publishing (`[evaluation]`, `saliency-export --evaluate`).

    See `exporter.evaluation` for what the scores mean.

    Attributes:
        enabled: Evaluate every exported method before publishing; a failed check fails
            the export and nothing is published.
        data: Evaluation images: a `.npy` file [N,H,W,C] of held-out model inputs; by
            default the verification samples passed to the export.
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
        check_bool("evaluation.enabled", self.enabled)
        check_optional_str("evaluation.data", self.data)
        for key in ("num_images", "steps"):
            check_int(f"evaluation.{key}", getattr(self, key), minimum=1)
        for key in ("max_randomization_spearman", "min_deletion_gain_over_random"):
            set_field(self, key, check_number(f"evaluation.{key}", getattr(self, key)))
        set_field(self, "blur_sigma", check_number("evaluation.blur_sigma", self.blur_sigma, positive=True))
        check_int("evaluation.seed", self.seed, minimum=0)


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """Everything that shapes an export, apart from where it is written.

    Each attribute is read from the TOML table named in brackets: the first five and the
    warmup sizes are keys of small tables, the others are tables (dataclasses) of their own.

    Attributes:
        name: `[model] name`: TF Serving's `model_spec.name`, used in warmup requests.
        input_shape: `[model] input_shape`: (H, W, C) for models whose input has unknown
            dimensions.
        class_names: `[model] class_names`: written as `assets/class_names.txt`.
        logits_layer: `[model] logits_layer`: the layer whose output are the logits
            (overrides detection).
        reduction: `[saliency] reduction`: channel reduction of the map, one of `REDUCTIONS`.
        input: `[input]`: the format of the signatures' `images` input (float32 by default).
        warmup_batch_sizes: `[warmup] batch_sizes`: of the warmup requests, per signature.
        verification: `[verification]`: verification settings.
        methods: `[methods]` and `[methods.<name>]`: the exported explanation signatures and
            their parameters.
        evaluation: `[evaluation]`: the opt-in faithfulness gate (sanity checks before
            publishing).
        limits: `[limits]`: per-request cost bounds of the signatures.
    """

    RENAMED: ClassVar[Mapping[str, str]] = {
        table: f"[methods.{table}]" for table in ("smoothgrad", "integrated_gradients", "gradcam")
    }

    name: str = dataclasses.field(default="model", metadata={TABLE: "model"})
    input_shape: tuple[int, int, int] | None = dataclasses.field(default=None, metadata={TABLE: "model"})
    class_names: tuple[str, ...] | None = dataclasses.field(default=None, metadata={TABLE: "model"})
    logits_layer: str | None = dataclasses.field(default=None, metadata={TABLE: "model"})
    reduction: str = dataclasses.field(default="max_abs", metadata={TABLE: "saliency"})
    input: InputConfig = dataclasses.field(default_factory=InputConfig)
    warmup_batch_sizes: tuple[int, ...] = dataclasses.field(
        default=(1, 8), metadata={TABLE: "warmup", KEY: "batch_sizes"}
    )
    verification: VerificationConfig = dataclasses.field(default_factory=VerificationConfig)
    methods: MethodsConfig = dataclasses.field(default_factory=MethodsConfig)
    evaluation: EvaluationConfig = dataclasses.field(default_factory=EvaluationConfig)
    limits: LimitsConfig = dataclasses.field(default_factory=LimitsConfig)

    def __post_init__(self) -> None:
        check_str("model.name", self.name)
        if self.input_shape is not None:
            set_field(self, "input_shape", check_int_tuple("model.input_shape", self.input_shape, length=3))
        if self.class_names is not None:
            set_field(self, "class_names", check_str_tuple("model.class_names", self.class_names))
        check_optional_str("model.logits_layer", self.logits_layer)
        if self.reduction not in REDUCTIONS:
            raise ConfigError(
                f"saliency.reduction must be one of {', '.join(REDUCTIONS)}; "
                f"received {self.reduction!r}."
            )
        set_field(self, "warmup_batch_sizes", check_int_tuple("warmup.batch_sizes", self.warmup_batch_sizes))
        for key, cls in (
            ("input", InputConfig),
            ("verification", VerificationConfig),
            ("methods", MethodsConfig),
            ("evaluation", EvaluationConfig),
            ("limits", LimitsConfig),
        ):
            if not isinstance(getattr(self, key), cls):
                raise ConfigError(f"ExportConfig.{key} must be a {cls.__name__}; received {getattr(self, key)!r}.")
        exported = {c.SERVING_DEFAULT, *(_methods.get(m).signature for m in self.methods.enabled)}
        # The exporter runs the signatures itself: verification at num_samples (serving_default
        # also in chunks of 8 for finite differences), the gate at num_images (serving_default
        # at up to 1024 rows per call for deletion/insertion).
        verify = max(self.verification.num_samples, 8)
        gate = self.evaluation.num_images if self.evaluation.enabled else 0
        floor = {name: max(verify, gate) for name in exported}
        if self.evaluation.enabled:
            floor[c.SERVING_DEFAULT] = max(floor[c.SERVING_DEFAULT], 1024)
        set_field(self, "limits", dataclasses.replace(self.limits, floor=tuple(sorted(floor.items()))))
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


def config_from_mapping(data: Mapping[str, Any]) -> ExportConfig:
    """Builds an `ExportConfig` from parsed TOML (tables `[model]`, `[saliency]`, `[methods]`, …).

    Args:
        data: The parsed document.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: On an unknown or renamed key, a wrong type or an invalid value; the
            message names the key.
    """
    return from_mapping(ExportConfig, data)


def methods_from_record(recorded: Mapping[str, Any] | None) -> MethodsConfig:
    """The `MethodsConfig` an export report recorded (`export.methods`).

    Reads the table layout (`to_mapping(MethodsConfig)`), and the flat one of reports written
    before each method had its own table (`smoothgrad_samples`, `ig_steps`, …). Reports of
    exports made before the methods existed record none: they have `explain` only. Reports
    without `request_inputs` predate the per-request parameters: their signatures have none.
    """
    recorded = dict(recorded or {})
    recorded.setdefault("request_inputs", False)
    for old, (table, key) in _FLAT_METHOD_KEYS.items():
        if old in recorded:
            recorded.setdefault(table, {})[key] = recorded.pop(old)
    return from_mapping(MethodsConfig, recorded, "methods")


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
