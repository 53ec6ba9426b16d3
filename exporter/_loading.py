"""Loading a user's model from disk, and fingerprinting it for the export report."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from exporter._errors import ModelLoadError

if TYPE_CHECKING:
    import keras

__all__ = ["import_user_modules", "load_keras_model", "model_fingerprint"]

_SUPPORTED_SUFFIXES = (".keras", ".h5", ".hdf5")


_IMPORT_FIX = (
    "Pass the module that defines it with saliency-export --import MODULE (repeatable; a "
    "dotted module name on PYTHONPATH or a .py file), where it is registered with "
    "@keras.saving.register_keras_serializable() or listed in a module-level "
    "custom_objects = {{...}}; in Python, pass custom_objects={{...}} to export_model, or "
    "load the model yourself and pass the model object."
)
_UNKNOWN = re.compile(r"Could not locate (class|function) '([^']+)'")


def import_user_modules(modules: Sequence[str]) -> dict[str, Any]:
    """Imports the user's modules (`--import`) so that their Keras classes register.

    Args:
        modules: Dotted module names, or paths of `.py` files.

    Returns:
        The union of the modules' `custom_objects` mappings (empty when none has one).

    Raises:
        ModelLoadError: A module cannot be imported, or its `custom_objects` is not a mapping.
    """
    found: dict[str, Any] = {}
    for name in modules:
        try:
            if name.endswith(".py"):
                path = Path(name)
                if not path.is_file():
                    raise FileNotFoundError(f"no such file {path}")
                spec = importlib.util.spec_from_file_location(path.stem, path)
                if spec is None or spec.loader is None:
                    raise ImportError(f"cannot import {path}")
                module = importlib.util.module_from_spec(spec)
                sys.modules[path.stem] = module
                spec.loader.exec_module(module)
            else:
                module = importlib.import_module(name)
        except Exception as error:  # the user's code can raise anything at import
            raise ModelLoadError(
                f"--import {name}: expected an importable module (dotted name on PYTHONPATH or "
                f"a .py file); importing it failed: {type(error).__name__}: {error}"
            ) from error
        objects = getattr(module, "custom_objects", None)
        if objects is not None:
            if not isinstance(objects, Mapping):
                raise ModelLoadError(
                    f"--import {name}: expected custom_objects to be a mapping name → class; "
                    f"received {type(objects).__name__}."
                )
            found.update(objects)
    return found


def load_keras_model(
    path: str | Path, *, safe_mode: bool = True, custom_objects: Mapping[str, Any] | None = None
) -> keras.Model:
    """Loads a `.keras` (or legacy `.h5`) model without compiling it.

    Args:
        path: The model file.
        safe_mode: Keras's safe mode: refuses to deserialize arbitrary code such as
            `Lambda` layers. Only turn it off for models you trust.
        custom_objects: Classes/functions the file needs that are not registered with
            Keras (see `import_user_modules`).

    Returns:
        The loaded model.

    Raises:
        ModelLoadError: If the file is missing, has an unsupported suffix, or cannot be
            deserialized.
    """
    import keras

    path = Path(path)
    if path.is_dir():
        raise ModelLoadError(
            f"Expected a Keras model file ending in {', '.join(_SUPPORTED_SUFFIXES)}; {path} is a "
            "directory. A SavedModel directory is exported with saliency-export --model DIR "
            "(export_model(DIR, ...)), not loaded as a Keras model."
        )
    if not path.is_file():
        raise ModelLoadError(f"Model file {path} does not exist.")
    if path.suffix.lower() not in _SUPPORTED_SUFFIXES:
        raise ModelLoadError(
            f"Expected a Keras model file ending in {', '.join(_SUPPORTED_SUFFIXES)}; "
            f"received {path.name!r}."
        )
    try:
        return keras.saving.load_model(
            path, compile=False, safe_mode=safe_mode, custom_objects=dict(custom_objects or {})
        )
    except Exception as error:  # Keras raises many types for a bad file; report them as one.
        unknown = _UNKNOWN.search(str(error))
        if unknown:
            raise ModelLoadError(
                f"{path} needs the {unknown.group(1)} {unknown.group(2)!r}, which Keras does not "
                "know: it is custom code that was not imported. " + _IMPORT_FIX.format()
            ) from error
        raise ModelLoadError(f"Could not load {path} as a Keras model: {error}") from error


def model_fingerprint(model: keras.Model, path: str | Path | None = None) -> str:
    """A stable SHA-256 of the model: the file's bytes when known, else the weights.

    Args:
        model: The model.
        path: The file (or SavedModel directory) it was loaded from, if any.

    Returns:
        `"sha256:<hex>"`.
    """
    if path is not None and Path(path).is_dir():
        from exporter._saved_model_source import saved_model_fingerprint

        return saved_model_fingerprint(path)
    digest = hashlib.sha256()
    if path is not None and Path(path).is_file():
        with Path(path).open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    else:
        weights = getattr(model, "weights", None)
        for weight in weights if weights is not None else model.variables:
            digest.update(str(getattr(weight, "path", None) or weight.name).encode())
            digest.update(np.asarray(weight.numpy()).tobytes())
    return "sha256:" + digest.hexdigest()
