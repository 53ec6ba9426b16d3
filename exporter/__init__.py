"""saliency-serving exporter: Keras classifier → TF-Serving SavedModel with saliency signatures.

Typical use:

    from exporter import export_model
    path = export_model("model.keras", "models/mnist")   # models/mnist/1

Importing this package imports TensorFlow. It first sets the serving runtime's defaults
(`model_server._tf_env`: TF_ENABLE_ONEDNN_OPTS=1 unless set), so that the export's
verification runs as the server will; a process that imported TensorFlow before keeps the
setting TF loaded with.
"""

from model_server._tf_env import apply_defaults as _apply_tf_defaults

_apply_tf_defaults()

from exporter._config import (  # noqa: E402
    INPUT_FORMATS,
    REDUCTIONS,
    EvaluationConfig,
    ExportConfig,
    InputConfig,
    LimitsConfig,
    MethodsConfig,
    VerificationConfig,
    load_config,
)
from exporter._diff import diff_versions  # noqa: E402
from exporter._errors import (  # noqa: E402
    ConfigError,
    EvaluationError,
    ExportError,
    LogitsNotFoundError,
    ModelLoadError,
    UnsupportedModelError,
    VerificationError,
    VersionExistsError,
)
from exporter._export import ExportResult, SaliencyExporter, export_model  # noqa: E402
from exporter._logits import LogitsHead, find_logits  # noqa: E402
from exporter._tf1 import Tf1SavedModel  # noqa: E402
from exporter._verify_dir import VerifyResult, verify_version  # noqa: E402
from exporter.methods import (  # noqa: E402
    GradCamParams,
    IntegratedGradientsParams,
    Method,
    NoParams,
    SmoothGradParams,
)
from serving_client.contract import EXPLAIN, IMAGES, SERVING_DEFAULT, TARGET_CLASS  # noqa: E402

__all__ = [
    "EXPLAIN",
    "IMAGES",
    "INPUT_FORMATS",
    "REDUCTIONS",
    "SERVING_DEFAULT",
    "TARGET_CLASS",
    "ConfigError",
    "EvaluationConfig",
    "EvaluationError",
    "ExportConfig",
    "ExportError",
    "ExportResult",
    "GradCamParams",
    "InputConfig",
    "IntegratedGradientsParams",
    "LimitsConfig",
    "LogitsHead",
    "LogitsNotFoundError",
    "Method",
    "MethodsConfig",
    "ModelLoadError",
    "NoParams",
    "SaliencyExporter",
    "SmoothGradParams",
    "Tf1SavedModel",
    "UnsupportedModelError",
    "VerificationConfig",
    "VerificationError",
    "VerifyResult",
    "VersionExistsError",
    "diff_versions",
    "export_model",
    "find_logits",
    "load_config",
    "verify_version",
]
