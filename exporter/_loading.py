"""Loading a user's model from disk, and fingerprinting it for the export report."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from exporter._errors import ModelLoadError

if TYPE_CHECKING:
    import keras

__all__ = ["load_keras_model", "model_fingerprint"]

_SUPPORTED_SUFFIXES = (".keras", ".h5", ".hdf5")


def load_keras_model(path: str | Path, *, safe_mode: bool = True) -> keras.Model:
    """Loads a `.keras` (or legacy `.h5`) model without compiling it.

    Args:
        path: The model file.
        safe_mode: Keras's safe mode: refuses to deserialize arbitrary code such as
            `Lambda` layers. Only turn it off for models you trust.

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
        return keras.saving.load_model(path, compile=False, safe_mode=safe_mode)
    except Exception as error:  # Keras raises many types for a bad file; report them as one.
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
