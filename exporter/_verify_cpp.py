"""Verification through TensorFlow's C++ loader: every signature, C++ session vs TF1 Python session.

TF Serving loads with `tensorflow::LoadSavedModel`; the TF1 Python loader that
`_verify.py` checks against the Keras model is a different code path. Here the written
export is loaded through `TF_LoadSessionFromSavedModel` (of the installed TF, in a
subprocess: `_cpp_loader.py`) and every signature is run, with the optional inputs
omitted and given; the outputs must be the TF1 session's. The figures go into the report
as `verification["cpp_loader"]`.

To cost little export time, the C++ process starts and loads while the TF1 checks run,
and it replays the TF1 checks' own runs (recorded by `_tf1.recording_runs`), so the
feeds are exactly theirs and the TF1 side runs nothing twice. A signature or feed the
TF1 checks did not cover is run through both loaders here.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from exporter._cpp_loader import CppLoaderError, CppSavedModel, TensorInfo, load_saved_model
from exporter._errors import VerificationError
from exporter._tf1 import RecordedRun, Tf1SavedModel
from model_server._tf_env import loaded_settings
from serving_client import contract as c

__all__ = ["CPP_LOADER_RTOL", "CppLoaderCheck", "compare_outputs", "serving_signatures"]

#: Same library, same graph: the outputs should be identical (measured 0.0). The slack,
#: relative to max(1, |output|), only absorbs a different float summation order.
CPP_LOADER_RTOL = 1e-5
_DT_STRING = 7
_NUMPY = {1: np.float32, 3: np.int32, 4: np.uint8, 9: np.int64, 2: np.float64}


def serving_signatures(signature_names: list[str]) -> list[str]:
    """The signatures a client can call (`__saved_model_init_op` is not one)."""
    return sorted(name for name in signature_names if not name.startswith("__"))


def compare_outputs(
    expected: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray], rtol: float = CPP_LOADER_RTOL
) -> tuple[float, str | None]:
    """Max |difference| over the outputs, and a description of the first mismatch (or None).

    Integer, bool and string outputs must be equal; float outputs within
    `rtol` × max(1, max |expected|).
    """
    if sorted(expected) != sorted(actual):
        return float("inf"), f"outputs {sorted(actual)}, expected {sorted(expected)}"
    worst, problem = 0.0, None
    for alias in sorted(expected):
        want, got = np.asarray(expected[alias]), np.asarray(actual[alias])
        if want.shape != got.shape or want.dtype != got.dtype:
            return float("inf"), f"{alias}: {got.dtype}{list(got.shape)}, expected {want.dtype}{list(want.shape)}"
        exact = want.dtype.kind in "iubOSU"
        if want.dtype.kind in "OSU":
            diff = 0.0 if np.array_equal(want, got) else float("inf")
        elif not want.size:
            diff = 0.0
        elif np.array_equal(want, got, equal_nan=True):
            diff = 0.0
        else:
            diff = float(np.max(np.abs(want.astype(np.float64) - got.astype(np.float64))))
            diff = float("inf") if np.isnan(diff) else diff
        scale = float(np.max(np.abs(want))) if want.size and not exact else 1.0
        tolerance = 0.0 if exact else rtol * max(1.0, scale if np.isfinite(scale) else 1.0)
        worst = max(worst, diff)
        if problem is None and not diff <= tolerance:
            problem = f"{alias}: max |difference| {diff:.3g} exceeds {tolerance:.3g}"
    return worst, problem


def _placeholder(info: TensorInfo) -> np.ndarray:
    shape = [1 if d is None or d < 0 else d for d in (info.shape or (1,))]
    if info.dtype == _DT_STRING:
        return np.full(shape, b"", dtype=object)
    return np.zeros(shape, _NUMPY.get(info.dtype, np.float32))


def _prepare(model: CppSavedModel) -> None:
    """Runs each signature once on placeholder inputs, with and without the optional ones.

    A session builds (prunes, optimizes) an executor the first time it sees a set of
    feeds and fetches, and caches it by their names: about 0.2 s per signature here.
    Doing it now, while the TF1 checks run, leaves only the runs themselves for later.
    Errors are ignored (bytes that are no image fail, after the executor was built).
    """
    for name in serving_signatures(list(model.signatures)):
        inputs = model.signatures[name].inputs
        required = {a: _placeholder(i) for a, i in inputs.items() if a not in model.signatures[name].defaults}
        variants = [required]
        if len(required) < len(inputs):
            variants.append({a: _placeholder(i) for a, i in inputs.items()})
        for feed in variants:
            try:
                model.run(name, feed)
            except CppLoaderError:
                pass


def _label(inputs: Mapping[str, Any]) -> str:
    return "all_inputs" if c.TARGET_CLASS in inputs else "default_inputs"


class CppLoaderCheck:
    """Loads an export through the C++ loader in the background; `verify()` compares.

    Example (what `SaliencyExporter.write` does):

        with CppLoaderCheck(staging) as check, recording_runs() as tf1_runs:
            figures = verify_export(staging, ...)        # TF1 checks, recorded
            figures["cpp_loader"] = check.verify(tf1_runs)
    """

    def __init__(self, export_dir: Path, library: str | Path | None = None) -> None:
        """Starts the C++ loader's process and the load (returns at once).

        Args:
            export_dir: The (unpublished) export.
            library: A libtensorflow_cc.so.2; the installed TF's by default.
        """
        self.export_dir = Path(export_dir)
        self._start = time.perf_counter()
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="cpp-loader")
        self._loaded_at = self._start
        self._loading = self._pool.submit(self._load, library)
        self._model: CppSavedModel | None = None

    def _load(self, library: str | Path | None) -> CppSavedModel:
        # The same kernels as the TF1 session it is compared with (see `loaded_settings`).
        model = load_saved_model(self.export_dir, library, env=loaded_settings())
        self._loaded_at = time.perf_counter()
        _prepare(model)
        return model

    def _loaded(self) -> CppSavedModel:
        if self._model is None:
            try:
                self._model = self._loading.result()
            except CppLoaderError as error:
                raise VerificationError(f"TF's C++ loader refused the export: {error}") from error
        return self._model

    def verify(self, tf1_runs: list[RecordedRun], images: np.ndarray | None = None) -> dict[str, Any]:
        """Replays the TF1 runs through the C++ loader; covers what they left out.

        Args:
            tf1_runs: The TF1 checks' runs on this export (from `recording_runs`); may be
                empty, e.g. to re-verify an existing version: then every signature is run
                through both loaders on `images`.
            images: The `images` feed for signatures the TF1 runs did not cover (default:
                the first recorded run's).

        Returns:
            The figures: library, TF version, per signature and feed ("default_inputs":
            optional inputs omitted, "all_inputs": given) the max |difference|, the
            overall maximum, the tolerance, the replayed and extra run counts, seconds.

        Raises:
            VerificationError: The C++ loader refused the export or a run, or an output
                differs from the TF1 session's (nothing is published then).
        """
        started = time.perf_counter()
        model = self._loaded()
        loaded = time.perf_counter()
        names = serving_signatures(list(model.signatures))
        figures: dict[str, Any] = {
            "library": str(model.runtime.library),
            "tf_version": model.runtime.version,
            "signatures": {},
        }
        worst = 0.0
        done: set[tuple[str, str, tuple[str, ...], tuple[str, ...]]] = set()
        runs = [r for r in tf1_runs if r.export_dir.resolve() == self.export_dir.resolve()]
        for run in runs:
            key = (run.signature, _label(run.inputs), tuple(sorted(run.inputs)), tuple(sorted(run.outputs)))
            if key in done or sorted(run.outputs) != sorted(model.signatures[run.signature].outputs):
                # One replay per feed; partial fetches (the finite-difference batch) would
                # each need an executor of their own, for outputs already compared.
                continue
            done.add(key)
            worst = max(worst, self._compare(model, figures, run))
        covered = {(s, label) for s, label, _, _ in done}
        missing = [
            (name, label)
            for name in names
            for label in ("default_inputs", "all_inputs")
            if (name, label) not in covered
            and (label == "default_inputs" or c.TARGET_CLASS in model.signatures[name].inputs)
        ]
        if missing:
            worst = max(worst, self._cover(model, figures, missing, runs, images))
        figures["max_abs_diff"] = worst
        figures["rtol"] = CPP_LOADER_RTOL
        figures["runs"] = {"replayed": len(done), "extra": len(missing)}
        # load_seconds runs beside the TF1 checks; the export waits for wait_seconds + seconds.
        figures["load_seconds"] = round(self._loaded_at - self._start, 3)
        figures["wait_seconds"] = round(loaded - started, 3)
        figures["seconds"] = round(time.perf_counter() - loaded, 3)
        return figures

    def _compare(self, model: CppSavedModel, figures: dict[str, Any], run: RecordedRun) -> float:
        label = _label(run.inputs)
        try:
            got = model.run(run.signature, run.inputs, tuple(run.outputs))
        except CppLoaderError as error:
            raise VerificationError(
                f"{run.signature} ({label.replace('_', ' ')}) fails through TF's C++ loader: {error}"
            ) from error
        diff, problem = compare_outputs(run.outputs, got)
        entry = figures["signatures"].setdefault(run.signature, {})
        key = f"{label}_max_abs_diff"
        entry[key] = max(entry.get(key, 0.0), diff)
        if problem is not None:
            raise VerificationError(
                f"{run.signature} ({label.replace('_', ' ')}): the C++ loader's output differs from "
                f"the TF1 session's: {problem} (library {model.runtime.library})."
            )
        return diff

    def _cover(
        self,
        model: CppSavedModel,
        figures: dict[str, Any],
        missing: list[tuple[str, str]],
        runs: list[RecordedRun],
        images: np.ndarray | None,
    ) -> float:
        """Runs the (signature, feed) pairs the TF1 checks did not, through both loaders."""
        if images is None:
            images = next((r.inputs[c.IMAGES] for r in runs if c.IMAGES in r.inputs), None)
        if images is None:
            raise VerificationError(
                "No `images` to run the signatures with: no TF1 run fed them and none were given."
            )
        worst = 0.0
        with Tf1SavedModel(self.export_dir) as saved:
            tf1_names = serving_signatures(list(saved.signature_defs))
            if tf1_names != serving_signatures(list(model.signatures)):
                raise VerificationError(
                    f"The C++ loader sees signatures {serving_signatures(list(model.signatures))}; "
                    f"the TF1 loader sees {tf1_names}."
                )
            predicted = saved.run(c.SERVING_DEFAULT, {c.IMAGES: images}, (c.PREDICTED_CLASS,))[c.PREDICTED_CLASS]
            num_classes = int(saved.signature_defs[c.SERVING_DEFAULT].outputs[c.LOGITS].tensor_shape.dim[-1].size)
            other = ((predicted + 1) % max(num_classes, 1)).astype(np.int32)
            for name, label in missing:
                feed = {c.IMAGES: images} if label == "default_inputs" else {c.IMAGES: images, c.TARGET_CLASS: other}
                run = RecordedRun(self.export_dir, name, feed, saved.run(name, feed))
                worst = max(worst, self._compare(model, figures, run))
        return worst

    def close(self) -> None:
        """Ends the C++ loader's process (also when the load or the TF1 checks failed)."""
        self._pool.shutdown(wait=True)
        try:
            model = self._model or self._loading.result()
        except Exception:  # noqa: BLE001 — a failed load has nothing to close
            return
        model.close()

    def __enter__(self) -> CppLoaderCheck:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
