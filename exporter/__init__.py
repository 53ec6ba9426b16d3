"""saliency-serving exporter: Keras classifier → TF-Serving SavedModel with saliency signatures.

Typical use:

    from exporter import export_model
    path = export_model("model.keras", "models/mnist")   # models/mnist/1

Importing this package imports TensorFlow.
"""

from exporter._config import (
    REDUCTIONS,
    EvaluationConfig,
    ExportConfig,
    VerificationConfig,
    load_config,
)
from exporter._contract import EXPLAIN, IMAGES, SERVING_DEFAULT, TARGET_CLASS
from exporter._errors import (
    ConfigError,
    EvaluationError,
    ExportError,
    LogitsNotFoundError,
    ModelLoadError,
    UnsupportedModelError,
    VerificationError,
    VersionExistsError,
)
from exporter._export import ExportResult, SaliencyExporter, export_model
from exporter._logits import LogitsHead, find_logits
from exporter._tf1 import Tf1SavedModel

__all__ = [
    "EXPLAIN",
    "IMAGES",
    "REDUCTIONS",
    "SERVING_DEFAULT",
    "TARGET_CLASS",
    "ConfigError",
    "EvaluationConfig",
    "EvaluationError",
    "ExportConfig",
    "ExportError",
    "ExportResult",
    "LogitsHead",
    "LogitsNotFoundError",
    "ModelLoadError",
    "SaliencyExporter",
    "Tf1SavedModel",
    "UnsupportedModelError",
    "VerificationConfig",
    "VerificationError",
    "VersionExistsError",
    "export_model",
    "find_logits",
    "load_config",
]
