"""A TensorFlow-Serving-compatible model server (gRPC + REST) for dev, CI and demos.

It loads SavedModel versions through the TF1 session loader (TF Serving's path), replays their
warmup records, follows the base path for new versions and answers TF Serving's gRPC and REST
APIs with TF Serving's status codes and messages, so clients can swap one for the other.
"""

# Before anything below imports TensorFlow: TF reads TF_ENABLE_ONEDNN_OPTS when its library loads.
from ._tf_env import apply_defaults as _apply_tf_defaults

_apply_tf_defaults()

from ._batching import BatchingOptions  # noqa: E402
from ._config import ModelConfig, VersionPolicy, parse_model_config_file, parse_model_config_text  # noqa: E402
from ._errors import ServingError  # noqa: E402
from ._manager import State, VersionStatus  # noqa: E402
from ._process import ServerProcess  # noqa: E402
from ._server import BoundPorts, ModelServer, ModelServerError, ServerOptions  # noqa: E402
from ._tls import SslOptions  # noqa: E402

__all__ = [
    "BatchingOptions",
    "BoundPorts",
    "ModelConfig",
    "ModelServer",
    "ModelServerError",
    "ServerOptions",
    "ServerProcess",
    "ServingError",
    "SslOptions",
    "State",
    "VersionPolicy",
    "VersionStatus",
    "parse_model_config_file",
    "parse_model_config_text",
]
