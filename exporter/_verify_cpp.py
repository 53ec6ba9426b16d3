"""Verification through TensorFlow's C++ loader: every signature, C++ session vs TF1 Python session.

TF Serving loads with `tensorflow::LoadSavedModel`; the TF1 Python loader that
`_verify.py` checks against the Keras model is a different code path. Here each
signature of the written export is run once through `TF_LoadSessionFromSavedModel` (of
the installed TF, in a subprocess: `_cpp_loader.py`), with the optional inputs omitted
and given, and must give the TF1 session's outputs. The figures go into the report as
`verification["cpp_loader"]`.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from exporter import _contract as c
from exporter._config import InputConfig, VerificationConfig
from exporter._cpp_loader import CppLoaderError, CppSavedModel, load_saved_model
from exporter._errors import VerificationError
from exporter._inputs import encode_samples
from exporter._tf1 import Tf1SavedModel

__all__ = ["CPP_LOADER_RTOL", "compare_outputs", "loader_feeds", "verify_cpp_loader"]

#: Same library, same graph: the outputs should be identical (measured 0.0). The slack,
#: relative to max(1, |output|), only absorbs a different float summation order.
CPP_LOADER_RTOL = 1e-5


def serving_signatures(signature_names: list[str]) -> list[str]:
    """The signatures a client can call (`__saved_model_init_op` is not one)."""
    return sorted(name for name in signature_names if not name.startswith("__"))


def loader_feeds(
    input_aliases: Mapping[str, list[str]], images: np.ndarray, other_class: np.ndarray
) -> dict[str, list[tuple[str, dict[str, np.ndarray]]]]:
    """signature → [(label, feed)]: `images` alone, and with `target_class` when it has one.

    Args:
        input_aliases: signature → its input aliases.
        images: The `images` feed (float32, uint8 or encoded bytes).
        other_class: An explicit `target_class` per image.
    """
    feeds = {}
    for name, aliases in input_aliases.items():
        variants = [("default_inputs", {c.IMAGES: images})]
        if c.TARGET_CLASS in aliases:
            variants.append(("all_inputs", {c.IMAGES: images, c.TARGET_CLASS: other_class}))
        feeds[name] = variants
    return feeds


def compare_outputs(expected: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray]) -> tuple[float, str | None]:
    """Max |difference| over the outputs, and a description of the first mismatch (or None).

    Integer outputs must be equal; float outputs within CPP_LOADER_RTOL × max(1, |expected|).
    """
    worst, problem = 0.0, None
    if sorted(expected) != sorted(actual):
        return float("inf"), f"outputs {sorted(actual)}, expected {sorted(expected)}"
    for alias in sorted(expected):
        want, got = np.asarray(expected[alias]), np.asarray(actual[alias])
        if want.shape != got.shape or want.dtype != got.dtype:
            return float("inf"), f"{alias}: {got.dtype}{list(got.shape)}, expected {want.dtype}{list(want.shape)}"
        if want.dtype.kind in "OSU":
            equal = bool(np.array_equal(want, got))
            diff = 0.0 if equal else float("inf")
        else:
            diff = float(np.max(np.abs(want.astype(np.float64) - got.astype(np.float64)))) if want.size else 0.0
            if np.isnan(diff) and np.array_equal(want, got, equal_nan=True):
                diff = 0.0
        tolerance = 0.0 if want.dtype.kind in "iubOSU" else CPP_LOADER_RTOL * max(1.0, float(np.max(np.abs(want))) if want.size else 1.0)
        worst = max(worst, diff)
        if problem is None and not diff <= tolerance:
            problem = f"{alias}: max |difference| {diff:.3g} exceeds {tolerance:.3g}"
    return worst, problem


def _samples(samples: np.ndarray | None, config: VerificationConfig, input_shape: tuple[int, int, int]) -> np.ndarray:
    """The TF1 check's samples (`verify_export` draws them the same way when none are given)."""
    if samples is not None:
        return np.asarray(samples, np.float32)
    rng = np.random.default_rng(config.seed)
    low, high = config.sample_range
    return rng.uniform(low, high, (config.num_samples, *input_shape)).astype(np.float32)


def _discard(loading: concurrent.futures.Future) -> None:
    try:
        loading.result().close()
    except Exception:  # noqa: BLE001 — the caller's own error is the one to report
        pass


def verify_cpp_loader(
    export_dir: Path,
    *,
    config: VerificationConfig,
    input_shape: tuple[int, int, int],
    input_config: InputConfig | None = None,
    samples: np.ndarray | None = None,
    library: str | Path | None = None,
) -> dict[str, Any]:
    """Runs every signature through the C++ loader and the TF1 session; they must agree.

    The C++ loader's process starts and loads the SavedModel while this process runs the
    TF1 session, so the check costs little more than the slower of the two.

    Args:
        export_dir: The (unpublished) export.
        config: The verification settings (the samples' seed and range).
        input_shape: (H, W, C).
        input_config: The input format (the feed is encoded as in the TF1 check).
        samples: The TF1 check's samples, if the caller gave any.
        library: A libtensorflow_cc.so.2; the installed TF's by default.

    Returns:
        The figures: library, TF version, per signature and feed the max |difference|,
        the overall maximum, the tolerance and the seconds taken.

    Raises:
        VerificationError: The C++ loader refused the export or a run, or an output
            differs from the TF1 session's (nothing is published then).
    """
    start = time.perf_counter()
    feed_images, _ = encode_samples(_samples(samples, config, input_shape), input_config or InputConfig())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        loading = pool.submit(load_saved_model, export_dir, library)
        try:
            with Tf1SavedModel(export_dir) as saved:
                names = serving_signatures(list(saved.signature_defs))
                predicted = saved.run(c.SERVING_DEFAULT, {c.IMAGES: feed_images}, (c.PREDICTED_CLASS,))
                num_classes = int(saved.signature_defs[c.SERVING_DEFAULT].outputs[c.LOGITS].tensor_shape.dim[-1].size)
                other = ((predicted[c.PREDICTED_CLASS] + 1) % max(num_classes, 1)).astype(np.int32)
                feeds = loader_feeds({n: list(saved.signature_defs[n].inputs) for n in names}, feed_images, other)
                expected = {
                    (name, label): saved.run(name, feed) for name, variants in feeds.items() for label, feed in variants
                }
        except BaseException:
            _discard(loading)
            raise
        try:
            model: CppSavedModel = loading.result()
        except CppLoaderError as error:
            raise VerificationError(f"TF's C++ loader refused the export: {error}") from error
        with model:
            figures: dict[str, Any] = {
                "library": str(model.runtime.library),
                "tf_version": model.runtime.version,
                "signatures": {},
            }
            cpp_names = serving_signatures(list(model.signatures))
            if cpp_names != names:
                raise VerificationError(
                    f"The C++ loader sees signatures {cpp_names}; the TF1 loader sees {names}."
                )
            worst = 0.0
            for (name, label), want in expected.items():
                feed = dict(feeds[name])[label]
                try:
                    got = model.run(name, feed)
                except CppLoaderError as error:
                    raise VerificationError(
                        f"{name} ({label.replace('_', ' ')}) fails through TF's C++ loader: {error}"
                    ) from error
                diff, problem = compare_outputs(want, got)
                figures["signatures"].setdefault(name, {})[f"{label}_max_abs_diff"] = diff
                worst = max(worst, diff)
                if problem is not None:
                    raise VerificationError(
                        f"{name} ({label.replace('_', ' ')}): the C++ loader's output differs from the "
                        f"TF1 session's: {problem} (library {model.runtime.library})."
                    )
    figures["max_abs_diff"] = worst
    figures["rtol"] = CPP_LOADER_RTOL
    figures["seconds"] = round(time.perf_counter() - start, 3)
    return figures
