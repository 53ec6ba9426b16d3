"""The compatibility matrix: exports × TF runtimes through the C++ loader, vs a reference runtime.

For each runtime (a `libtensorflow_cc.so.2`, see `_runtimes.py`), one C++-loader process
loads every export and runs every signature, with the optional inputs omitted and given;
outputs are compared with the reference runtime's (the installed TF). A runtime that
lacks an op the export uses fails at load ("Op type not registered ..."), which is the
TF Serving failure this catches before rollout.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from exporter._cpp_loader import CppLoaderError, CppRuntime
from exporter._verify import scaled_tolerance
from exporter._verify_cpp import compare_outputs, serving_signatures
from serving_client import contract as c
from serving_client.report import read_report

__all__ = [
    "MATRIX_RTOL", "Cell", "MatrixExport", "format_grid", "format_table", "matrix_tolerance", "run_matrix",
]

#: Across releases kernels may change summation order; relative to max(1, |output|).
MATRIX_RTOL = 1e-4


def matrix_tolerance(export_dir: Path) -> float:
    """MATRIX_RTOL, widened for a reduced-precision export by the exporter's own rule.

    A float16/bfloat16 model's kernels round to its compute dtype's eps, and releases may
    round differently (one float16 ulp is 9.8e-4): the report's `verification.compute_dtype`
    says which, and `exporter._verify` scales its float32 tolerances the same way.
    """
    compute_dtype = read_report(export_dir).verification.compute_dtype
    return scaled_tolerance(MATRIX_RTOL, compute_dtype, 1.0)


@dataclasses.dataclass(frozen=True)
class MatrixExport:
    """One export of the matrix: its version directory and the `images` to feed."""

    path: Path
    images: np.ndarray
    target_class: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class Cell:
    """One runtime × export × signature result.

    Attributes:
        load_ok: The runtime loaded the export.
        run_ok: Every feed of the signature ran (False when the load failed).
        max_abs_diff: Max |difference| from the reference over outputs and feeds (None
            if it did not run, or on the reference itself: 0.0).
        ok: Loaded, ran, and within `matrix_tolerance` of the reference.
        error: TF's message (status code and text) or the mismatch, if any.
    """

    runtime: str
    export: str
    signature: str
    load_ok: bool
    run_ok: bool
    max_abs_diff: float | None
    ok: bool
    error: str | None = None


def _feeds(export: MatrixExport, inputs: Mapping[str, Any]) -> list[tuple[str, dict[str, np.ndarray]]]:
    variants = [("default_inputs", {c.IMAGES: export.images})]
    if c.TARGET_CLASS in inputs:
        target = export.target_class
        if target is None:
            target = np.zeros(len(export.images), np.int32)
        variants.append(("all_inputs", {c.IMAGES: export.images, c.TARGET_CLASS: target}))
    return variants


def _run_runtime(
    version: str, library: Path, exports: Mapping[str, MatrixExport], env: Mapping[str, str] | None
) -> dict[str, Any]:
    """export → {"error": str} | {signature: {label: outputs | CppLoaderError}}."""
    results: dict[str, Any] = {}
    try:
        runtime = CppRuntime(library, env=env)
    except CppLoaderError as error:
        return {name: {"error": str(error)} for name in exports}
    with runtime:
        for name, export in exports.items():
            try:
                model = runtime.load(export.path)
            except CppLoaderError as error:
                results[name] = {"error": f"{error.code_name}: {error.tf_message}"}
                continue
            with model:
                per_signature: dict[str, Any] = {}
                for signature in serving_signatures(list(model.signatures)):
                    outcome: dict[str, Any] = {}
                    for label, feed in _feeds(export, model.signatures[signature].inputs):
                        try:
                            outcome[label] = model.run(signature, feed)
                        except CppLoaderError as error:
                            outcome[label] = error
                    per_signature[signature] = outcome
                results[name] = per_signature
    return results


def run_matrix(
    exports: Mapping[str, MatrixExport],
    runtimes: Mapping[str, Path],
    reference: str,
    *,
    env: Mapping[str, str] | None = None,
) -> list[Cell]:
    """Runs every export's signatures on every runtime and compares with `reference`.

    Args:
        exports: name → export.
        runtimes: version → libtensorflow_cc.so.2 (must include `reference`).
        reference: The runtime whose outputs are the expected ones (the exporting TF).
        env: Extra environment of the C++-loader processes.

    Returns:
        One Cell per runtime × export × signature (signatures of the reference; an
        export that fails to load on a runtime gives one Cell with signature "*").

    Raises:
        CppLoaderError: The reference runtime itself fails on an export.
    """
    if reference not in runtimes:
        raise ValueError(f"The reference runtime {reference!r} is not among {sorted(runtimes)}.")
    expected = _run_runtime(reference, runtimes[reference], exports, env)
    for name, result in expected.items():
        if "error" in result:
            raise CppLoaderError(
                f"The reference runtime fails on export {name!r}: {result['error']}",
                code=None, library=runtimes[reference], stage="load",
            )
    tolerances = {name: matrix_tolerance(export.path) for name, export in exports.items()}
    cells: list[Cell] = []
    for version, library in runtimes.items():
        actual = expected if version == reference else _run_runtime(version, library, exports, env)
        for name in exports:
            result = actual[name]
            if "error" in result:
                cells.append(Cell(version, name, "*", False, False, None, False, result["error"]))
                continue
            for signature, want in expected[name].items():
                got = result.get(signature)
                if got is None:
                    cells.append(Cell(version, name, signature, True, False, None, False, "signature missing"))
                    continue
                worst, problem, ran = 0.0, None, True
                for label, reference_outputs in want.items():
                    outputs = got.get(label)
                    if isinstance(reference_outputs, CppLoaderError):
                        raise reference_outputs
                    if isinstance(outputs, CppLoaderError):
                        ran = False
                        problem = problem or f"{label}: {outputs.code_name}: {outputs.tf_message}"
                        continue
                    diff, mismatch = compare_outputs(reference_outputs, outputs, tolerances[name])
                    worst = max(worst, diff)
                    problem = problem or (f"{label}: {mismatch}" if mismatch else None)
                cells.append(
                    Cell(version, name, signature, True, ran, worst if ran else None, problem is None, problem)
                )
    return cells


def format_table(cells: list[Cell]) -> str:
    """A fixed-width table: runtime | export | signature | load | run | max diff | note."""
    rows = [("runtime", "export", "signature", "load", "run", "max |diff|", "note")]
    for cell in cells:
        diff = "-" if cell.max_abs_diff is None else f"{cell.max_abs_diff:.1e}" if cell.max_abs_diff else "0"
        note = "" if cell.ok else (cell.error or "")[:110].replace("\n", " ")
        rows.append((cell.runtime, cell.export, cell.signature, "ok" if cell.load_ok else "FAIL",
                     "ok" if cell.run_ok else ("FAIL" if cell.load_ok else "-"), diff, note))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r[:6], widths, strict=True)) + ("  " + r[6] if r[6] else "") for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _short(cell: Cell) -> str:
    if not cell.load_ok:
        return "LOAD FAIL"
    if not cell.run_ok:
        return "RUN FAIL"
    diff = "0" if not cell.max_abs_diff else f"{cell.max_abs_diff:.0e}"
    return diff if cell.ok else f"DIFF {diff}"


def format_grid(cells: list[Cell]) -> str:
    """export × signature rows, one column per runtime: max |diff| or LOAD/RUN FAIL; failures listed after.

    A cell reads "0" or e.g. "9e-08" when it loaded, ran and matched the reference.
    """
    runtimes = list(dict.fromkeys(cell.runtime for cell in cells))
    keys = list(dict.fromkeys((cell.export, cell.signature) for cell in cells if cell.signature != "*"))
    by_key = {(cell.runtime, cell.export, cell.signature): cell for cell in cells}
    rows = [("export", "signature", *runtimes)]
    for export, signature in keys:
        row = []
        for runtime in runtimes:
            cell = by_key.get((runtime, export, signature)) or by_key.get((runtime, export, "*"))
            row.append("-" if cell is None else _short(cell))
        rows.append((export, signature, *row))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    failures = [cell for cell in cells if not cell.ok]
    if failures:
        lines.append("\nFailures:")
        lines.extend(
            f"  TF {cell.runtime} · {cell.export} · {cell.signature}: {cell.error}" for cell in failures
        )
    return "\n".join(lines)
