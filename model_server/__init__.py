"""A TensorFlow-Serving-compatible model server (gRPC + REST) for dev, CI and demos.

It loads SavedModel versions through the TF1 session loader (TF Serving's path), replays their
warmup records, follows the base path for new versions and answers TF Serving's gRPC and REST
APIs with TF Serving's status codes and messages, so clients can swap one for the other.
"""

from ._batching import BatchingOptions
from ._config import ModelConfig, VersionPolicy, parse_model_config_file, parse_model_config_text
from ._errors import ServingError
from ._manager import State, VersionStatus
from ._process import ServerProcess
from ._server import BoundPorts, ModelServer, ModelServerError, ServerOptions
from ._tls import SslOptions

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
