"""Verification of a written export before it is published.

Checks that nothing in the graph must be XLA-compiled (stock TF Serving would fail it), then,
through the TF1 session loader:
1. the signatures carry the contract's names, dtypes and the `target_class` default;
2. `logits`/`probabilities` match the Keras model on sample inputs;
3. `saliency` matches an independent eager `GradientTape` reference, for the predicted
   class (omitted `target_class`) and for an explicit other class;
4. the reference gradient matches central finite differences of the *exported* logits
   at the positions with the largest gradient.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import keras
import numpy as np

from exporter import methods as _methods
from exporter._config import InputConfig, MethodsConfig, VerificationConfig
from exporter._errors import VerificationError
from exporter._inputs import encode_samples
from exporter._reference import EagerReference, FunctionReference, LogitsCopy, reference_explain
from exporter._tf1 import Tf1SavedModel
from serving_client import contract as c
from serving_client.contract import FLOAT32, INPUT_FORMAT_DTYPES, DataType

__all__ = ["check_contract", "check_xla_free", "verify_export"]

logger = logging.getLogger("exporter")

# Plain ints (the contract's DataType numbers), so messages print them as before.
_DT_FLOAT, _DT_INT32 = int(DataType.DT_FLOAT), int(DataType.DT_INT32)
#: DataType of `images` for each input format.
_IMAGES_DTYPE = {name: int(dtype) for name, dtype in INPUT_FORMAT_DTYPES.items()}
_EXPECTED = {
    c.SERVING_DEFAULT: (
        {c.IMAGES: _DT_FLOAT},
        {c.LOGITS: _DT_FLOAT, c.PROBABILITIES: _DT_FLOAT, c.PREDICTED_CLASS: _DT_INT32},
    ),
    c.EXPLAIN: (
        {c.IMAGES: _DT_FLOAT, c.TARGET_CLASS: _DT_INT32},
        {
            c.LOGITS: _DT_FLOAT,
            c.PROBABILITIES: _DT_FLOAT,
            c.PREDICTED_CLASS: _DT_INT32,
            c.TARGET_CLASS: _DT_INT32,
            c.SALIENCY: _DT_FLOAT,
        },
    ),
}


#: DataType of each output alias an explanation method may declare (float unless a class index).
_OUTPUT_DTYPE = {c.PREDICTED_CLASS: _DT_INT32, c.TARGET_CLASS: _DT_INT32}
#: DataType of a per-request input (`RequestInput.dtype`).
_REQUEST_DTYPE = {"int32": _DT_INT32, "float32": _DT_FLOAT}


def _method_expected(method: _methods.Method, methods: MethodsConfig) -> tuple[dict[str, int], dict[str, int]]:
    """(inputs, outputs) alias → DataType of a method's signature, from its declared inputs and outputs."""
    request = methods.request_inputs_of(method.name)
    inputs = {**_EXPECTED[c.EXPLAIN][0], **{spec.alias: _REQUEST_DTYPE[spec.dtype] for spec in request}}
    return inputs, {alias: _OUTPUT_DTYPE.get(alias, _DT_FLOAT) for alias in method.outputs}


def check_contract(
    signature_defs: dict[str, Any], methods: MethodsConfig | None = None, input_format: str = FLOAT32
) -> None:
    """Raises VerificationError unless the SignatureDefs follow the documented contract.

    Args:
        signature_defs: Signature name → SignatureDef.
        methods: The exported methods; their signatures are checked too.
        input_format: The export's input format (sets the dtype of `images`).
    """
    methods = methods or MethodsConfig()
    enabled_methods = [_methods.get(m) for m in methods.enabled]
    expected = {
        **_EXPECTED,
        **{m.signature: _method_expected(m, methods) for m in enabled_methods if m.signature != c.EXPLAIN},
    }
    for name, (inputs, outputs) in expected.items():
        inputs = {**inputs, c.IMAGES: _IMAGES_DTYPE[input_format]}
        if name not in signature_defs:
            raise VerificationError(
                f"Signature {name!r} is missing; found {sorted(signature_defs)}."
            )
        sig = signature_defs[name]
        for kind, wanted, actual in (("input", inputs, sig.inputs), ("output", outputs, sig.outputs)):
            got = {alias: info.dtype for alias, info in actual.items()}
            if got != wanted:
                raise VerificationError(
                    f"Signature {name!r} {kind}s: expected {wanted} (alias → DataType); received {got}."
                )
    for method in enabled_methods:
        for alias in (c.TARGET_CLASS, *(spec.alias for spec in methods.request_inputs_of(method.name))):
            if alias not in signature_defs[method.signature].defaults:
                raise VerificationError(f"Signature {method.signature!r} does not record a default for {alias}.")


def check_xla_free(export_dir: Path) -> None:
    """Raises VerificationError if anything the SavedModel's graph runs must be XLA-compiled.

    Stock TF Serving runs with `--xla_cpu_compilation_enabled=false` by default and fails such
    a graph on its first run (and its warmup, so its load; see `model_server._xla`).
    Keras's grouped convolutions are rewritten while the signatures trace
    (`exporter._grouped_conv`), so what is left is the model's own `jit_compile` code.

    Args:
        export_dir: The SavedModel directory (one MetaGraph, as the exporter writes).
    """
    from tensorflow.core.protobuf import saved_model_pb2

    from model_server._xla import XLA_FLAG, describe, xla_compiled_functions

    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((Path(export_dir) / "saved_model.pb").read_bytes())
    functions = [f for meta in saved_model.meta_graphs for f in xla_compiled_functions(meta.graph_def)]
    if functions:
        raise VerificationError(
            f"The export at {export_dir} needs XLA: {describe(functions)} must be XLA-compiled "
            f"(jit_compile=True). Stock TF Serving runs with {XLA_FLAG}=false by default and "
            "fails it with INTERNAL 'XLA compilation disabled'. The exporter rewrites a Keras "
            "model's grouped convolutions without XLA; remove jit_compile from the model's own "
            "functions (or its channels-first 3-D convolutions, which Keras compiles with XLA) "
            "and export again; a SavedModel source keeps its graph, so export its Keras model."
        )


#: Rounding allowance for reduced-precision compute: float16/bfloat16 kernels (and the
#: graph vs eager order of operations) each round to eps of the compute dtype; a few
#: layers' worth of that, relative to the quantity's scale, is 16 ulps.
_ROUNDING_ULPS = 16
_EPS = {"float16": 2.0**-10, "bfloat16": 2.0**-7}


def _compute_dtype(model: Any) -> str:
    """The lowest-precision compute dtype of the model's layers (mixed precision policies)."""
    found = "float32"
    for layer in getattr(model, "layers", None) or []:
        policy = getattr(layer, "dtype_policy", None)
        dtype = getattr(policy, "compute_dtype", None)
        if dtype in _EPS and (found == "float32" or _EPS[dtype] > _EPS[found]):
            found = dtype
    return found


def scaled_tolerance(tolerance: float, compute_dtype: str, scale: float) -> float:
    """The configured (float32) tolerance, widened to the rounding of a reduced-precision dtype."""
    if compute_dtype not in _EPS:
        return tolerance
    return max(tolerance, _ROUNDING_ULPS * _EPS[compute_dtype] * scale)


def _max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)))) if a.size else 0.0


def _expected_probabilities(
    model: keras.Model,
    images: np.ndarray,
    copy: LogitsCopy | FunctionReference,
    model_outputs_probabilities: bool,
) -> np.ndarray:
    if isinstance(copy, FunctionReference):
        return copy.probabilities(images)
    if not model_outputs_probabilities:
        # The model outputs logits (or the user named them): probabilities are their softmax.
        logits = copy.logits(images).astype(np.float64)
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True)
    out = np.asarray(model(images, training=False), np.float64)
    return np.concatenate([1.0 - out, out], axis=-1) if copy.binary else out


#: Central differences in float64: the step that balances truncation (h²) against
#: rounding (eps/h) is h ≈ eps64^(1/3) ≈ 6e-6 (in input units, inputs of order 1). At
#: that step a ReLU/max-pool kink is crossed only by units within ~1e-5 of it, whose share
#: of the derivative is negligible; 10h is tried too and the closer estimate kept (a wrong
#: gradient is wrong at both). Two steps, not three: each is 2 × fd_positions float64
#: forward passes, the largest cost of verifying a big model (ResNet50 at 224).
FLOAT64_STEPS = (6e-5, 6e-6)


def _central_differences(
    logits_fn: Any, image: np.ndarray, target: int, positions: np.ndarray, steps: np.ndarray, dtype: Any
) -> np.ndarray:
    """[positions, steps] central-difference estimates of d logit[target] / d image."""
    count = len(positions)
    batch = np.repeat(image.astype(dtype)[None], 2 * count * len(steps), axis=0)
    spans = []
    row = 0
    for pos in positions:
        index = np.unravel_index(pos, image.shape)
        for eps in steps:
            batch[(row, *index)] += eps
            batch[(row + 1, *index)] -= eps
            # The step as represented: in float32, x ± eps is rounded.
            spans.append(float(batch[(row, *index)]) - float(batch[(row + 1, *index)]))
            row += 2
    # Chunks bound the memory of a float64 pass through a large network.
    chunk = 8
    logits = np.concatenate(
        [np.asarray(logits_fn(batch[i : i + chunk]), np.float64) for i in range(0, len(batch), chunk)]
    )
    return ((logits[0::2, target] - logits[1::2, target]) / np.array(spans)).reshape(count, len(steps))


def _finite_differences(
    saved: Tf1SavedModel,
    float64_logits: Any,
    image: np.ndarray,
    target: int,
    gradient: np.ndarray,
    cfg: VerificationConfig,
) -> dict[str, Any]:
    """Central differences of the logit at the positions of largest |gradient|.

    With a float64 copy of the model (`float64_logits`), the differences are taken in
    float64 and compared with the eager float32 gradient, which the saliency checks tie
    to the exported one: a gradient that is wrong in the model (a wrong custom gradient)
    or in the export is caught. Without one (explicit heads, layers that cannot run in
    float64), the differences are of the exported float32 logits at steps eps, eps/10,
    eps/100 (`fd_epsilon`), as float32 resolves no finer.
    """
    flat = np.abs(gradient).ravel()
    count = min(cfg.fd_positions, flat.size)
    positions = np.argsort(flat)[::-1][:count]
    dtype: Any
    if float64_logits is not None:
        source, steps, dtype = "float64_copy", np.array(FLOAT64_STEPS), np.float64
        logits_fn = float64_logits
    else:
        source, steps, dtype = "exported_float32_logits", np.array(
            [cfg.fd_epsilon, cfg.fd_epsilon / 10, cfg.fd_epsilon / 100]
        ), np.float32

        def logits_fn(batch: np.ndarray) -> np.ndarray:
            return saved.run(c.SERVING_DEFAULT, {c.IMAGES: batch}, (c.LOGITS,))[c.LOGITS]

    logger.info(
        "Verification: central differences at %d positions x %d steps (%s)", count, len(steps), source
    )
    numeric = _central_differences(logits_fn, image, target, positions, steps, dtype)
    analytic = gradient.ravel()[positions].astype(np.float64)
    scale = max(float(np.max(np.abs(gradient))), 1e-12)
    per_position = np.min(np.abs(numeric - analytic[:, None]), axis=1) / scale
    return {
        "differentiated": source,
        "positions": int(count),
        "epsilons": steps.tolist(),
        "max_error_relative_to_max_gradient": float(per_position.max()),
    }


def verify_export(
    export_dir: Path,
    model: keras.Model,
    *,
    reduction: str,
    config: VerificationConfig,
    input_shape: tuple[int, int, int],
    logits_layer: str | None = None,
    model_outputs_probabilities: bool = True,
    samples: np.ndarray | None = None,
    methods: MethodsConfig | None = None,
    input_config: InputConfig | None = None,
    reference: FunctionReference | None = None,
) -> dict[str, Any]:
    """Verifies the SavedModel at `export_dir` against `model`.

    Args:
        export_dir: The (unpublished) export.
        model: The user's Keras model.
        reduction: The saliency reduction the export was built with.
        config: Tolerances and sample settings.
        input_shape: (H, W, C).
        logits_layer: The logits override, if any, for the reference.
        model_outputs_probabilities: Compare `probabilities` with the model's output
            (else with the softmax of the reference logits).
        samples: Optional sample inputs [N,H,W,C]; random uniform in
            `config.sample_range` otherwise.
        methods: The exported explanation methods, with their parameters as resolved for
            this model (each method's `prepare`); each signature besides `explain` is
            compared with its method's eager reference (`Method.reference`, by
            `Method.checks`), for the predicted and for another class.
        input_config: The input format. For uint8 and image_bytes the samples are
            quantized (PNG-encoded for bytes), the references computed on the quantized
            float images, and the finite-difference check (which needs float inputs) is
            skipped.
        reference: The eager reference of an explicit head (`logits_fn`); by default a
            logits copy of `model` is cloned.

    Returns:
        The verification figures (for the report).

    Raises:
        VerificationError: If any check fails; the message gives the figure and the tolerance.
    """
    check_xla_free(export_dir)  # first: nothing else matters if TF Serving cannot run it
    if samples is None:
        rng = np.random.default_rng(config.seed)
        low, high = config.sample_range
        samples = rng.uniform(low, high, (config.num_samples, *input_shape)).astype(np.float32)
    input_config = input_config or InputConfig()
    feed_images, samples = encode_samples(samples, input_config)

    logger.info("Verification: eager reference on %d samples (logits copy, GradientTape)", len(samples))
    copy: EagerReference = reference if reference is not None else LogitsCopy.of(model, logits_layer)
    expected = reference_explain(copy, samples, None, reduction)
    num_classes = expected["logits"].shape[-1]
    other = ((expected["predicted_class"] + 1) % num_classes).astype(np.int32)
    reference_other = reference_explain(copy, samples, other, reduction)

    compute_dtype = _compute_dtype(model)
    logits_scale = float(np.max(np.abs(expected["logits"]))) if expected["logits"].size else 0.0
    logits_atol = scaled_tolerance(config.logits_atol, compute_dtype, logits_scale)
    probabilities_atol = scaled_tolerance(config.probabilities_atol, compute_dtype, 1.0)
    saliency_atol = scaled_tolerance(config.saliency_atol, compute_dtype, 1.0)
    fd_rtol = scaled_tolerance(config.fd_rtol, compute_dtype, 1.0)
    figures: dict[str, Any] = {
        "samples": int(samples.shape[0]),
        "compute_dtype": compute_dtype,
        "tolerance_rule": (
            "the configured float32 tolerances"
            if compute_dtype == "float32"
            else f"max(configured tolerance, {_ROUNDING_ULPS} x eps({compute_dtype}) x scale); "
            "scale = max |logit| for logits, 1 for probabilities, saliency and the relative "
            "finite-difference error"
        ),
    }
    float64_logits = None
    if input_config.format == "float32" and isinstance(copy, LogitsCopy):
        logger.info("Verification: building a float64 copy of the model for finite differences")
        float64_logits = copy.float64_logits()
        if float64_logits is not None:
            # The float64 copy must compute the model's function, or its differences prove nothing.
            agreement = _max_abs_diff(float64_logits(samples[:1].astype(np.float64)), expected["logits"][:1])
            figures["float64_copy_logits_max_abs_diff"] = agreement
            if not agreement <= logits_atol:
                figures["float64_copy_rejected"] = f"differs from the model by {agreement:.3g} > {logits_atol:.3g}"
                float64_logits = None
    with Tf1SavedModel(export_dir) as saved:
        check_contract(saved.signature_defs, methods, input_config.format)
        predict = saved.run(c.SERVING_DEFAULT, {c.IMAGES: feed_images})
        explain = saved.run(c.EXPLAIN, {c.IMAGES: feed_images})
        explain_other = saved.run(c.EXPLAIN, {c.IMAGES: feed_images, c.TARGET_CLASS: other})

        checks = [
            ("logits", _max_abs_diff(predict[c.LOGITS], expected["logits"]), logits_atol),
            (
                "probabilities",
                _max_abs_diff(predict[c.PROBABILITIES], _expected_probabilities(model, samples, copy, model_outputs_probabilities)),
                probabilities_atol,
            ),
            ("explain_logits", _max_abs_diff(explain[c.LOGITS], predict[c.LOGITS]), logits_atol),
            ("saliency_predicted_class", _max_abs_diff(explain[c.SALIENCY], expected["saliency"]), saliency_atol),
            ("saliency_other_class", _max_abs_diff(explain_other[c.SALIENCY], reference_other["saliency"]), saliency_atol),
        ]
        for name, value, tolerance in checks:
            figures[f"{name}_max_abs_diff"] = value
            figures[f"{name}_tolerance"] = tolerance
            if not value <= tolerance:
                raise VerificationError(
                    f"Export does not match the reference: max |{name} difference| = {value:.3g} "
                    f"exceeds the tolerance {tolerance:.3g} (TF1 loader vs eager Keras model)."
                )
        if not np.array_equal(explain[c.TARGET_CLASS], expected["predicted_class"]):
            raise VerificationError(
                "explain without target_class must explain the predicted class: expected "
                f"{expected['predicted_class'].tolist()}, received {explain[c.TARGET_CLASS].tolist()}."
            )
        if not np.array_equal(explain_other[c.TARGET_CLASS], other):
            raise VerificationError(
                f"explain ignored target_class: expected {other.tolist()}, received "
                f"{explain_other[c.TARGET_CLASS].tolist()}."
            )
        vanilla = _methods.get(c.VANILLA)
        figures["explain_class_axis"] = _verify_class_axis(
            saved, copy, (feed_images, samples), other, reduction, vanilla.params_type(), vanilla, saliency_atol
        )
        fd = None
        if input_config.format == "float32":
            fd = _finite_differences(
                saved, float64_logits, samples[0], int(expected["target_class"][0]), expected["gradient"][0], config
            )
        if methods is not None:
            figures["methods"] = _verify_methods(
                saved, copy, (feed_images, samples), other, reduction, methods, config,
                saliency_atol=saliency_atol,
            )
    if fd is None:
        # Integer pixels cannot be nudged by 1e-2; the saliency checks above still ran.
        figures["finite_differences"] = {"skipped": f"input format {input_config.format} has no float input"}
        return figures
    figures["finite_differences"] = fd
    figures["finite_differences_tolerance"] = fd_rtol
    if not fd["max_error_relative_to_max_gradient"] <= fd_rtol:
        of = "a float64 copy of the model" if fd["differentiated"] == "float64_copy" else "the exported logits"
        raise VerificationError(
            f"The gradient does not match central finite differences of {of}: "
            f"max error {fd['max_error_relative_to_max_gradient']:.3g} of the largest gradient "
            f"exceeds {fd_rtol:.3g} (steps {fd['epsilons']}, compute dtype {compute_dtype})."
        )
    return figures


def _verify_methods(
    saved: Tf1SavedModel,
    copy: EagerReference,
    feed_and_samples: tuple[np.ndarray, np.ndarray],
    other: np.ndarray,
    reduction: str,
    methods: MethodsConfig,
    config: VerificationConfig,
    *,
    saliency_atol: float | None = None,
) -> dict[str, Any]:
    """Each enabled method's signature (but `explain`, checked above) vs its eager reference.

    `saliency_atol`: the tolerance scaled to the compute dtype (default: the configured one).

    `feed_and_samples`: what the signatures are fed, and the float images the model sees.

    Returns:
        Signature name → its figures (each check's max difference, per target).
    """
    feed_images, samples = feed_and_samples
    atol = config.saliency_atol if saliency_atol is None else saliency_atol
    figures: dict[str, Any] = {}
    checked = [_methods.get(m) for m in methods.enabled if _methods.get(m).signature != c.EXPLAIN]
    runs: list[tuple[str, _methods.Method, np.ndarray | None, dict[str, np.ndarray]]] = []
    for target in (None, other):
        label = "predicted_class" if target is None else "other_class"
        runs.extend((label, method, target, {}) for method in checked)
    # Mixed per-image values in one request: each image must get its own answer.
    for method in checked:
        if methods.request_inputs_of(method.name):
            params = methods.params_of(method.name)
            values = mixed_request_values(method, params, samples.shape[0], samples, config.seed)
            runs.append(("per_request", method, other, values))
    for label, method, target, values in runs:
        name = method.signature
        params = methods.params_of(method.name)
        feed = {c.IMAGES: feed_images} if target is None else {c.IMAGES: feed_images, c.TARGET_CLASS: target}
        feed.update(values)
        if values:
            reference_fn: Any = method.reference  # the request keyword is the method's own
            ref = reference_fn(copy, samples, target, reduction, params, request=values)
        else:
            ref = method.reference(copy, samples, target, reduction, params)
        out = saved.run(name, feed)
        if not np.array_equal(out[c.TARGET_CLASS], ref[c.TARGET_CLASS]):
            raise VerificationError(
                f"{name} explained classes {out[c.TARGET_CLASS].tolist()}; expected "
                f"{ref[c.TARGET_CLASS].tolist()} ({label})."
            )
        recorded = figures.setdefault(name, {})
        for figure, value in method.figures(out).items():
            recorded[f"{figure}_{label}"] = value
        for check, value, tolerance in method.checks(out, ref, atol):
            recorded[f"{check}_{label}_max_abs_diff"] = value
            if not value <= tolerance:
                raise VerificationError(
                    f"{name} does not match its eager reference: max |{check} difference| = "
                    f"{value:.3g} exceeds the tolerance {tolerance:.3g} ({label}"
                    + (f", per-image {', '.join(f'{k}={_brief(v)}' for k, v in values.items())}" if values else "")
                    + ")."
                )
        if values:
            recorded["per_request_values"] = {k: _brief(v) for k, v in values.items()}
    for method in checked:
        figures.setdefault(method.signature, {}).update(
            _verify_class_axis(saved, copy, feed_and_samples, other, reduction, methods.params_of(method.name), method, atol)
        )
    return figures


def _verify_class_axis(
    saved: Tf1SavedModel,
    copy: Any,
    feed_and_samples: tuple[np.ndarray, np.ndarray],
    other: np.ndarray,
    reduction: str,
    params: Any,
    method: _methods.Method,
    atol: float,
) -> dict[str, float]:
    """A `[B, 2]` target_class (an explicit class and −2, the runner-up) vs the eager reference per class.

    So a wrong reshape or row order of the class axis (`exporter._classes`) cannot publish.
    """
    from exporter.methods.base import resolve_classes

    feed_images, samples = feed_and_samples[0][:2], feed_and_samples[1][:2]
    explicit = other[:2]
    ranked = -2 if copy.logits(samples[:1]).shape[-1] >= 2 else -1
    target = np.stack([explicit, np.full_like(explicit, ranked)], axis=1).astype(np.int32)
    out = saved.run(method.signature, {c.IMAGES: feed_images, c.TARGET_CLASS: target})
    name = method.signature
    reference_logits = copy.logits(samples)
    resolved = resolve_classes(reference_logits, target)
    if not np.array_equal(out[c.TARGET_CLASS], resolved):
        raise VerificationError(
            f"{name} with target_class {target.tolist()} explained classes {out[c.TARGET_CLASS].tolist()}; "
            f"expected {resolved.tolist()} (class axis)."
        )
    recorded: dict[str, float] = {}
    for k in range(target.shape[1]):
        ref = method.reference(copy, samples, resolved[:, k], reduction, params)
        served = {alias: value if alias in c.PREDICT_OUTPUTS else value[:, k] for alias, value in out.items()}
        for check, value, tolerance in method.checks(served, ref, atol):
            recorded[f"{check}_class_axis_{k}_max_abs_diff"] = value
            if not value <= tolerance:
                raise VerificationError(
                    f"{name} with a [batch, K] target_class does not match its eager reference for class "
                    f"column {k}: max |{check} difference| = {value:.3g} exceeds the tolerance {tolerance:.3g}."
                )
    return recorded


def mixed_request_values(
    method: _methods.Method, params: Any, batch: int, samples: np.ndarray, seed: int
) -> dict[str, np.ndarray]:
    """One value per image for each of the method's per-request inputs, not all the same.

    Integers cycle over the default, about half of it and a few more than it (within the
    bounds); floats over the default and the default + 0.1; baselines are two per image,
    uniform in the samples' range (model input space). Small, so the eager reference stays
    cheap, and different per image, so a batch that mixed images up would fail.
    """
    from exporter.methods.base import BASELINES

    rng = np.random.default_rng(seed + 1)
    values: dict[str, np.ndarray] = {}
    for spec in method.request_inputs:
        if spec.kind == BASELINES:
            low, high = float(samples.min()), float(samples.max())
            values[spec.alias] = rng.uniform(low, high, (batch, 2, *samples.shape[1:])).astype(np.float32)
            continue
        default = getattr(params, spec.default_field)
        maximum = spec.maximum(params)
        if spec.dtype == "int32":
            cycle = [default, max(int(spec.minimum), default // 2), default + 2]
            if maximum is not None:
                cycle = [min(v, int(maximum)) for v in cycle]
        else:
            cycle = [default, default + 0.1]
        values[spec.alias] = np.array([cycle[i % len(cycle)] for i in range(batch)], spec.dtype)
    return values


def _brief(value: np.ndarray) -> Any:
    """A per-request value for messages and the report: scalars listed, baselines by shape."""
    return value.tolist() if value.ndim == 1 else f"shape {list(value.shape)}"
