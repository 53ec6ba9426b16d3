"""The exporter's exception hierarchy: one base, one subclass per way an export can fail."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "EvaluationError",
    "ExportError",
    "LogitsNotFoundError",
    "ModelLoadError",
    "UnsupportedModelError",
    "VerificationError",
    "VersionExistsError",
]


class ExportError(Exception):
    """Base class of every error the exporter raises on purpose."""


class ConfigError(ExportError):
    """The export configuration is invalid (unknown key, wrong type, bad value)."""


class ModelLoadError(ExportError):
    """The model file could not be read as a Keras model."""


class UnsupportedModelError(ExportError):
    """The model is not a single-input image classifier the exporter can explain."""


class LogitsNotFoundError(UnsupportedModelError):
    """The pre-softmax logits of the model could not be located automatically."""


class VersionExistsError(ExportError):
    """The requested version directory already exists; exports never overwrite."""


class EvaluationError(ExportError):
    """An explanation method failed the export's faithfulness gate (`[evaluation]`)."""


class VerificationError(ExportError):
    """The written SavedModel did not match the Keras model or the reference gradient."""
