"""Re-verifying a published version directory, without the Keras model it came from.

An export is verified against its model before it is published (`exporter._verify`). A
pipeline that promotes it later, maybe on another machine, can only trust the files it
has; `verify_version` checks those:

1. `report`: `assets.extra/export_report.json` parses and has the sections used below;
2. `files_hash`: the report's export-files SHA-256 matches the files (an edited,
   truncated, added or missing file fails here);
3. `contract`: the SignatureDefs follow the contract (names, aliases, dtypes, defaults:
   `exporter._verify.check_contract`), have the shapes of the recorded input shape and
   class count, and equal the signatures recorded in the report;
4. `tf1_loader`: TF's TF1 session loader (TF Serving's path) loads the version and runs
   every signature on the report's verification samples, with and without
   `target_class`; the outputs are consistent (same logits in every signature, the
   omitted target is the predicted class, an explicit one is honoured, probabilities
   sum to 1, maps in [0, 1], all finite);
5. `warmup`: every record of `assets.extra/tf_serving_warmup_requests` parses as a
   PredictionLog for a signature of this version with its inputs, and replays;
6. `cpp_loader`: TF's C++ loader (`TF_LoadSessionFromSavedModel`, in a subprocess) gives
   the TF1 loader's outputs; `cpp_loader:<version>` for each requested older runtime;
7. `evaluation` (when asked): the faithfulness gate of `exporter.evaluation`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from exporter._config import InputConfig, VerificationConfig
from exporter._errors import ExportError, VerificationError
from exporter._files_hash import export_files_sha256
from exporter._tf1 import recording_runs
from exporter._warmup import WARMUP_FILE
from serving_client import contract as c
from serving_client.report import ExportReport, ReportError, parse_report, read_report

__all__ = ["REPORT_ASSET", "Check", "VerifyResult", "reference_samples", "verify_version"]

logger = logging.getLogger("exporter")

#: Where the exporter writes the report (exporter._export.REPORT_ASSET).
REPORT_ASSET = c.REPORT_ASSET
#: Where the compatibility matrix caches older TF runtimes (`make compat`).
COMPAT_CACHE = Path(__file__).resolve().parents[1] / "build" / "compat" / "runtimes"

_OK, _FAILED, _SKIPPED = "ok", "failed", "skipped"


@dataclasses.dataclass(frozen=True)
class Check:
    """One check of a version.

    Attributes:
        name: e.g. "contract", "cpp_loader:2.14".
        status: "ok", "failed" or "skipped".
        detail: What was checked, or why it failed or was skipped.
        figures: Measured values (max differences, counts, seconds).
    """

    name: str
    status: str
    detail: str
    figures: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class VerifyResult:
    """The outcome of `verify_version`; `passed` unless a check failed (skipped ones pass)."""

    path: str
    checks: tuple[Check, ...]
    seconds: float

    @property
    def passed(self) -> bool:
        """True when no check failed."""
        return all(check.status != _FAILED for check in self.checks)

    @property
    def failures(self) -> list[str]:
        """`name: detail` of each failed check."""
        return [f"{check.name}: {check.detail}" for check in self.checks if check.status == _FAILED]

    def to_dict(self) -> dict[str, Any]:
        """The JSON summary printed by `saliency-export verify`."""
        return {
            "command": "verify",
            "path": self.path,
            "passed": self.passed,
            "failures": self.failures,
            "seconds": round(self.seconds, 2),
            "checks": [dataclasses.asdict(check) | {"figures": dict(check.figures)} for check in self.checks],
        }


class _Failed(Exception):
    """A check's failure, with its message."""


class _Skipped(Exception):
    """A check that cannot run (its reason)."""


def _read_report(export_dir: Path) -> ExportReport:
    try:
        return read_report(export_dir)
    except ReportError as error:
        raise _Failed(str(error)) from None


def _typed(report: ExportReport | Mapping[str, Any]) -> ExportReport:
    """The typed report (a report dict, e.g. an `ExportResult.report`, is typed here)."""
    return report if isinstance(report, ExportReport) else parse_report(report)


def _verification_config(report: ExportReport | Mapping[str, Any]) -> VerificationConfig:
    """The export's `VerificationConfig` from its report (defaults for older reports)."""
    verification = _typed(report).verification
    known = {f.name for f in dataclasses.fields(VerificationConfig)}
    # The report's JSON values: the dataclass checks them.
    kwargs: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in verification.settings.items() if k in known
    }
    if verification.samples is not None:
        kwargs.setdefault("num_samples", verification.samples)
    return VerificationConfig(**kwargs)


def reference_samples(report: ExportReport | Mapping[str, Any]) -> np.ndarray:
    """The verification samples of an export, regenerated from its report: float [N,H,W,C].

    The exporter draws them uniformly in `sample_range` with `seed`; the report records
    those settings (`verification.settings`); reports written before it did get the
    defaults of `VerificationConfig`, which is what such exports used unless configured.
    When the export was given its own samples (`caller_samples`), these are the random
    ones it would have drawn: still deterministic, so two runs see the same images.
    """
    config = _verification_config(report)
    shape = _typed(report).model.input_shape
    low, high = config.sample_range
    return np.random.default_rng(config.seed).uniform(low, high, (config.num_samples, *shape)).astype(np.float32)


def input_config(report: ExportReport | Mapping[str, Any]) -> InputConfig:
    """The export's `InputConfig`, from its report (float32 for reports that predate formats)."""
    return InputConfig(**_typed(report).export.input)


def _methods(report: ExportReport) -> Any:
    from exporter.evaluation._maps import methods_config_from_report

    return methods_config_from_report(report.raw)


# --- 2. files hash -------------------------------------------------------------------------


def _check_files_hash(export_dir: Path, report: ExportReport) -> Check:
    recorded = report.export_files.sha256 if report.export_files is not None else None
    if not recorded:
        raise _Skipped("the report records no export-files hash (exported before saliency-export recorded one)")
    actual = export_files_sha256(export_dir, [REPORT_ASSET])
    if actual != recorded:
        raise _Failed(
            f"the files do not match the report: expected export-files SHA-256 {recorded}, computed "
            f"{actual}; a file of the version was edited, added or removed after it was verified."
        )
    return Check("files_hash", _OK, "the files match the report's export-files SHA-256", {"sha256": actual})


# --- 3. contract -----------------------------------------------------------------------------


def _signature_defs(export_dir: Path) -> dict[str, Any]:
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2

    path = export_dir / "saved_model.pb"
    if not path.is_file():
        raise _Failed(f"{path} is missing.")
    saved_model = saved_model_pb2.SavedModel()
    try:
        saved_model.ParseFromString(path.read_bytes())
    except DecodeError as error:
        raise _Failed(f"{path} does not parse as a SavedModel protobuf: {error}.") from None
    if len(saved_model.meta_graphs) != 1:
        raise _Failed(f"expected one MetaGraph (tag serve); {path} has {len(saved_model.meta_graphs)}.")
    return dict(saved_model.meta_graphs[0].signature_def)


def _method_outputs(method: str) -> tuple[str, ...]:
    from exporter import methods

    return methods.get(method).outputs


def expected_shapes(
    signature: str, input_shape: Sequence[int], num_classes: int, input_format: str
) -> dict[str, list[int] | None]:
    """alias → the shape the contract gives it (−1: the batch dimension) in `signature`."""
    h, w, ch = (int(d) for d in input_shape)
    shapes: dict[str, list[int] | None] = {
        c.IMAGES: [-1] if input_format == c.IMAGE_BYTES else [-1, h, w, ch],
        c.LOGITS: [-1, num_classes],
        c.PROBABILITIES: [-1, num_classes],
        c.PREDICTED_CLASS: [-1],
    }
    if signature != c.SERVING_DEFAULT:
        # Unknown rank (None): target_class is [batch] or [batch, K], and the outputs per
        # target follow it ([batch, H, W] or [batch, K, H, W]; see docs/contract.md).
        shapes.update({c.TARGET_CLASS: None, c.SALIENCY: None})
    method = c.method_of_signature(signature)
    if method is not None and c.ATTRIBUTIONS in _method_outputs(method):
        shapes.update({c.ATTRIBUTIONS: None, c.APPROXIMATION_ERROR: None})
    return shapes


def _check_contract(export_dir: Path, report: ExportReport) -> tuple[Check, dict[str, Any]]:
    from exporter._report import signature_specs
    from exporter._verify import check_contract

    signature_defs = _signature_defs(export_dir)
    fmt = input_config(report).format
    try:
        check_contract(signature_defs, _methods(report), fmt)
    except VerificationError as error:
        raise _Failed(str(error)) from None
    specs = signature_specs(export_dir)
    problems = []
    input_shape = list(report.model.input_shape)
    num_classes = report.model.num_classes
    for name, spec in specs.items():
        expected = expected_shapes(name, input_shape, num_classes, fmt)
        for alias, info in {**spec["inputs"], **spec["outputs"]}.items():
            if alias in expected and info["shape"] != expected[alias]:
                problems.append(f"{name}/{alias} has shape {info['shape']}, expected {expected[alias]}")
        for alias, value in spec["defaults"].items():
            if alias == c.TARGET_CLASS and value != [c.TARGET_CLASS_DEFAULT]:
                problems.append(f"{name}/target_class defaults to {value}, expected [{c.TARGET_CLASS_DEFAULT}]")
    recorded = report.raw["signatures"]
    if specs != recorded:
        changed = sorted(set(specs) ^ set(recorded)) or sorted(n for n in specs if specs[n] != recorded.get(n))
        problems.append(f"the SignatureDefs differ from those recorded in the report (signatures {changed})")
    if problems:
        raise _Failed("; ".join(problems) + ".")
    detail = f"{len(specs)} signatures ({', '.join(specs)}) follow the contract and match the report"
    return Check("contract", _OK, detail, {"signatures": sorted(specs)}), signature_defs


# --- 4. TF1 loader ---------------------------------------------------------------------------

def _max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    if a.dtype == object or b.dtype == object:
        return 0.0 if np.array_equal(a, b) else float("inf")
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def _check_outputs(name: str, out: Mapping[str, np.ndarray], count: int, problems: list[str]) -> None:
    for alias, value in out.items():
        if value.shape[:1] != (count,):
            problems.append(f"{name}/{alias} has {value.shape[:1]} rows for {count} images")
        elif value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            problems.append(f"{name}/{alias} is not finite")
    if c.LOGITS in out and c.PREDICTED_CLASS in out:
        if not np.array_equal(np.argmax(out[c.LOGITS], axis=-1), out[c.PREDICTED_CLASS]):
            problems.append(f"{name}/predicted_class is not the argmax of its logits")
    if c.PROBABILITIES in out:
        total = np.abs(out[c.PROBABILITIES].astype(np.float64).sum(axis=-1) - 1.0)
        if total.size and total.max() > 1e-4:
            problems.append(f"{name}/probabilities rows sum to 1 ± {total.max():.3g}, expected ± 1e-4")
    if c.SALIENCY in out:
        low, high = float(out[c.SALIENCY].min()), float(out[c.SALIENCY].max())
        if low < -1e-6 or high > 1 + 1e-6:
            problems.append(f"{name}/saliency spans [{low:.3g}, {high:.3g}], expected within [0, 1]")


def _check_tf1(
    export_dir: Path, report: ExportReport, signature_defs: Mapping[str, Any]
) -> tuple[Check, Any]:
    from exporter._inputs import encode_samples
    from exporter._tf1 import Tf1SavedModel
    from exporter._verify import check_xla_free

    feed_images, _ = encode_samples(reference_samples(report), input_config(report))
    count = len(feed_images)
    try:
        check_xla_free(export_dir)  # stock TF Serving would not run it
    except VerificationError as error:
        raise _Failed(str(error)) from None
    try:
        saved = Tf1SavedModel(export_dir)
    except Exception as error:  # TF raises many types; any of them means TF Serving would refuse it too.
        raise _Failed(f"the TF1 session loader refused the version: {type(error).__name__}: {error}") from None
    runs = 0
    problems: list[str] = []
    logits_atol = _verification_config(report).logits_atol
    try:
        base = saved.run(c.SERVING_DEFAULT, {c.IMAGES: feed_images})
        runs += 1
        _check_outputs(c.SERVING_DEFAULT, base, count, problems)
        num_classes = base[c.LOGITS].shape[-1]
        other = ((base[c.PREDICTED_CLASS] + 1) % num_classes).astype(np.int32)
        logits_diff = 0.0
        for name in sorted(signature_defs):
            if name == c.SERVING_DEFAULT or name.startswith("__"):
                continue
            feeds = [{c.IMAGES: feed_images}]
            if c.TARGET_CLASS in signature_defs[name].inputs:
                # An explicit class on two images shows it is honoured; all N would double
                # the cost of the slow methods (IG, SmoothGrad) for no more evidence.
                feeds.append({c.IMAGES: feed_images[:2], c.TARGET_CLASS: other[:2]})
            for feed in feeds:
                rows = len(feed[c.IMAGES])
                out = saved.run(name, feed)
                runs += 1
                _check_outputs(name, out, rows, problems)
                if c.LOGITS in out:
                    logits_diff = max(logits_diff, _max_abs_diff(out[c.LOGITS], base[c.LOGITS][:rows]))
                if c.TARGET_CLASS in out:
                    wanted = feed.get(c.TARGET_CLASS, base[c.PREDICTED_CLASS])
                    if not np.array_equal(out[c.TARGET_CLASS], wanted):
                        problems.append(
                            f"{name} explained classes {out[c.TARGET_CLASS].tolist()}, expected {wanted.tolist()}"
                        )
    except Exception as error:
        saved.close()
        raise _Failed(f"running a signature through the TF1 loader failed: {type(error).__name__}: {error}") from None
    if logits_diff > logits_atol:
        problems.append(f"logits differ between signatures by {logits_diff:.3g} (tolerance {logits_atol:.3g})")
    if problems:
        saved.close()
        raise _Failed("; ".join(problems) + ".")
    figures = {"samples": count, "runs": runs, "logits_max_abs_diff_across_signatures": logits_diff}
    detail = f"loaded and ran {runs} signature calls on {count} verification samples; outputs consistent"
    return Check("tf1_loader", _OK, detail, figures), saved


# --- 5. warmup -------------------------------------------------------------------------------


def _check_warmup(export_dir: Path, report: ExportReport, saved: Any) -> Check:
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = export_dir / WARMUP_FILE
    if not path.is_file():
        raise _Failed(f"{path} is missing; TF Serving would serve the first requests cold.")
    signatures = saved.signature_defs
    name = report.model.name
    covered: dict[str, list[int]] = {}
    index = -1
    try:
        for index, record in enumerate(tf.data.TFRecordDataset(str(path)).as_numpy_iterator()):
            log = prediction_log_pb2.PredictionLog.FromString(record)
            if not log.HasField("predict_log"):
                raise _Failed(f"record {index} is not a PredictLog (TF Serving replays Predict requests here)")
            request = log.predict_log.request
            signature = request.model_spec.signature_name or c.SERVING_DEFAULT
            if signature not in signatures:
                raise _Failed(f"record {index} asks for signature {signature!r}; the version has {sorted(signatures)}")
            if name and request.model_spec.name != name:
                raise _Failed(f"record {index} names model {request.model_spec.name!r}, the report {name!r}")
            sig_inputs = signatures[signature].inputs
            unknown = sorted(set(request.inputs) - set(sig_inputs))
            if unknown:
                raise _Failed(f"record {index} ({signature}) sends inputs {unknown} the signature lacks")
            for alias, proto in request.inputs.items():
                if proto.dtype != sig_inputs[alias].dtype:
                    raise _Failed(
                        f"record {index} ({signature}/{alias}) has DataType {proto.dtype}, the signature "
                        f"{sig_inputs[alias].dtype}"
                    )
            feeds = {alias: tf.make_ndarray(proto) for alias, proto in request.inputs.items()}
            saved.run(signature, feeds)
            covered.setdefault(signature, []).append(int(len(feeds[c.IMAGES])) if c.IMAGES in feeds else 0)
    except _Failed:
        raise
    except Exception as error:
        raise _Failed(
            f"{WARMUP_FILE} record {index + 1} does not parse or replay: {type(error).__name__}: {error}"
        ) from None
    missing = sorted(s for s in signatures if not s.startswith("__") and s not in covered)
    if missing:
        raise _Failed(f"{WARMUP_FILE} has no request for {missing} ({index + 1} records)")
    wanted = list(report.export.warmup_batch_sizes)
    limits = report.limits.signatures if report.limits is not None else {}
    odd = []
    for signature, sizes in sorted(covered.items()):
        # Batches over a signature's [limits] maximum are warmed at that maximum.
        ceiling = limits[signature].max_batch if signature in limits else None
        expected = sorted(dict.fromkeys(b if ceiling is None else min(b, ceiling) for b in wanted))
        if wanted and sorted(sizes) != expected:
            odd.append(f"{signature} {sorted(sizes)} (expected {expected})")
    if odd:
        raise _Failed(f"{WARMUP_FILE} warms other batch sizes than the report's: {'; '.join(odd)}")
    detail = f"{index + 1} records for {len(covered)} signatures parse and replay through the TF1 loader"
    return Check("warmup", _OK, detail, {"records": index + 1, "batch_sizes": wanted})


# --- 6. C++ loader ---------------------------------------------------------------------------


def _runtime_library(version: str) -> Path:
    """The `libtensorflow_cc.so.2` of TF `version` from the `make compat` cache.

    "2.14" picks the newest cached 2.14.x; a full version ("2.14.1") that is not cached
    is fetched once into the cache, as `make compat` does (`exporter._runtimes`).
    """
    from exporter._runtimes import RuntimeFetchError, runtime_library

    cached = sorted(
        (p.name.removeprefix("tf-") for p in COMPAT_CACHE.glob("tf-*") if p.is_dir()),
        key=lambda v: tuple(int(x) if x.isdigit() else 0 for x in v.split(".")),
    )
    matches = [v for v in cached if v == version or v.startswith(version + ".")]
    if not matches and version.count(".") < 2:
        raise _Failed(
            f"no cached TF {version}.x runtime in {COMPAT_CACHE} (cached: {cached or 'none'}); run "
            f"`make compat`, or name a full release (e.g. {version}.0) to fetch it."
        )
    try:
        return runtime_library(matches[-1] if matches else version, COMPAT_CACHE)
    except RuntimeFetchError as error:
        raise _Failed(f"TF {version} runtime: {error}") from None


def _start_cpp(export_dir: Path, runtime: str | None) -> Any:
    """Starts `exporter._verify_cpp.CppLoaderCheck` (the load overlaps the TF1 checks).

    Returns:
        The started check, to `verify()` with the TF1 checks' recorded runs.
    """
    from exporter._verify_cpp import CppLoaderCheck

    return CppLoaderCheck(export_dir, None if runtime is None else _runtime_library(runtime))


def _check_cpp(cpp_check: Any, tf1_runs: list[Any], runtime: str | None) -> Check:
    """The C++ loader replays the TF1 checks' runs (and covers the rest): same outputs."""
    name = "cpp_loader" if runtime is None else f"cpp_loader:{runtime}"
    if isinstance(cpp_check, _Failed):
        raise cpp_check
    try:
        figures = cpp_check.verify(tf1_runs)
    except VerificationError as error:
        raise _Failed(str(error)) from None
    figures.pop("seconds", None)
    detail = (
        f"TF {figures['tf_version']} C++ loader ran every signature (with and without target_class); "
        f"max difference from the TF1 loader {figures['max_abs_diff']:.3g}"
    )
    return Check(name, _OK, detail, figures)


# --- 7. evaluation ---------------------------------------------------------------------------


def _check_evaluation(export_dir: Path, report: ExportReport, model: str | None, images: str | None) -> Check:
    from exporter.evaluation import evaluate_export

    try:
        result = evaluate_export(
            export_dir, images if images is not None else reference_samples(report), model=model
        )
    except ExportError as error:
        raise _Failed(str(error)) from None
    figures = {
        m.method: {
            "passed": m.passed,
            "deletion_gain_over_random": m.deletion_gain_over_random,
            "final_randomization_spearman": m.randomization[-1].spearman if m.randomization else None,
        }
        for m in result.methods
    }
    if not result.passed:
        raise _Failed("the explanations fail the evaluation gate: " + "; ".join(result.failures))
    return Check("evaluation", _OK, f"{len(result.methods)} methods pass the evaluation gate on {result.num_images} images", figures)


# --- the whole ------------------------------------------------------------------------------


def _timed(name: str, checks: list[Check], step: Callable[[], Any]) -> Any:
    """Runs one check; records ok/failed/skipped with its time. Returns its extra values or None."""
    start = time.perf_counter()
    extra = None
    try:
        result = step()
        check, *rest = result if isinstance(result, tuple) else (result,)
        extra = rest
    except _Failed as error:
        check = Check(name, _FAILED, str(error))
    except _Skipped as error:
        check = Check(name, _SKIPPED, str(error))
    except Exception as error:  # noqa: BLE001 — a gate fails closed, with the reason, never crashes
        logger.debug("verify %s raised", name, exc_info=True)
        check = Check(name, _FAILED, f"unexpected {type(error).__name__}: {error}")
    seconds = round(time.perf_counter() - start, 3)
    checks.append(dataclasses.replace(check, figures={**check.figures, "seconds": seconds}))
    logger.info("verify %s: %s (%.1f s) %s", check.name, check.status, seconds, check.detail)
    return extra


def _skip(checks: list[Check], names: Sequence[str], reason: str) -> None:
    checks.extend(Check(name, _SKIPPED, reason) for name in names)


def verify_version(
    export_dir: str | Path,
    *,
    runtimes: Sequence[str] = (),
    cpp: bool = True,
    evaluate: bool = False,
    model: str | None = None,
    images: str | None = None,
) -> VerifyResult:
    """Re-verifies an existing version directory; needs no Keras model (but `evaluate` does).

    Every check runs that can (a failed hash does not hide a failing contract); checks
    whose input failed are reported as skipped, and the result fails.

    Args:
        export_dir: `BASE/<version>`, as written by saliency-export.
        runtimes: Older TF runtimes (e.g. ["2.14", "2.20"]) to run every signature
            through as well, from the `make compat` cache.
        cpp: Compare TF's C++ loader with the TF1 loader (when the runner is installed).
        evaluate: Also run the evaluation gate (randomization test, deletion/insertion).
        model: The Keras model file for `evaluate` (default: the report's `model.source`).
        images: Evaluation images for `evaluate` (a .npy file; default: the
            verification samples).

    Returns:
        The `VerifyResult`; `.passed`, `.failures`, `.to_dict()` for the JSON summary.
    """
    start = time.perf_counter()
    export_dir = Path(export_dir)
    checks: list[Check] = []
    later = ["files_hash", "contract", "tf1_loader", "warmup", "cpp_loader",
             *[f"cpp_loader:{r}" for r in runtimes], *(["evaluation"] if evaluate else [])]
    reports: list[ExportReport] = []

    def report_step() -> Check:
        reports.append(_read_report(export_dir))
        return Check("report", _OK, f"{REPORT_ASSET} parses", {"model": reports[0].model.name})

    _timed("report", checks, report_step)
    if not reports:
        _skip(checks, later, "needs the export report")
        return VerifyResult(str(export_dir), tuple(checks), time.perf_counter() - start)
    report = reports[0]
    _timed("files_hash", checks, lambda: _check_files_hash(export_dir, report))
    contract = _timed("contract", checks, lambda: _check_contract(export_dir, report))
    signature_defs = contract[0] if contract else None
    if signature_defs is None:
        # Without a readable contract, load the signatures the TF1 loader sees.
        try:
            signature_defs = _signature_defs(export_dir)
        except _Failed:
            _skip(checks, later[2:], "needs a saved_model.pb that parses")
            return VerifyResult(str(export_dir), tuple(checks), time.perf_counter() - start)
    with contextlib.ExitStack() as stack:
        # Started first: the C++ loader's process loads while the TF1 checks run, then
        # replays exactly their (recorded) runs.
        cpp_checks: dict[str | None, Any] = {}
        for runtime in ([None] if cpp else []) + list(runtimes):
            try:
                cpp_checks[runtime] = stack.enter_context(_start_cpp(export_dir, runtime))
            except _Failed as error:
                cpp_checks[runtime] = error
        tf1_runs = stack.enter_context(recording_runs())
        tf1 = _timed("tf1_loader", checks, lambda: _check_tf1(export_dir, report, signature_defs))
        if not tf1:
            _skip(checks, later[3:], "needs the TF1 loader's outputs")
            return VerifyResult(str(export_dir), tuple(checks), time.perf_counter() - start)
        with tf1[0] as saved:
            _timed("warmup", checks, lambda: _check_warmup(export_dir, report, saved))
        if not cpp:
            _skip(checks, ["cpp_loader"], "not asked for")
        for runtime, cpp_check in cpp_checks.items():
            name = "cpp_loader" if runtime is None else f"cpp_loader:{runtime}"
            _timed(name, checks, functools.partial(_check_cpp, cpp_check, list(tf1_runs), runtime))
    if evaluate:
        _timed("evaluation", checks, lambda: _check_evaluation(export_dir, report, model, images))
    return VerifyResult(str(export_dir), tuple(checks), time.perf_counter() - start)
