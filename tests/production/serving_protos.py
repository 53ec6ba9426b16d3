"""TF Serving config messages for parsing configs/*.config in tests.

`ModelServerConfig` ships in the tensorflow-serving-api wheel. `BatchingParameters`
(tensorflow_serving/servables/tensorflow/session_bundle_config.proto) and `MonitoringConfig`
(tensorflow_serving/config/monitoring_config.proto) do not (checked for 2.21.0), so when they
are missing they are rebuilt here from a transcription of the upstream .proto files: same
package, message names, field names, numbers and types, in a private descriptor pool so they
can never clash with the official modules if a later wheel adds them.
"""

from __future__ import annotations

import importlib
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

_F = descriptor_pb2.FieldDescriptorProto

# (name, number, type, label, type_name) per field, from the upstream .proto files.
_BATCHING_FIELDS = [
    ("max_batch_size", 1, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, ".google.protobuf.Int64Value"),
    ("batch_timeout_micros", 2, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, ".google.protobuf.Int64Value"),
    ("max_enqueued_batches", 3, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, ".google.protobuf.Int64Value"),
    ("num_batch_threads", 4, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, ".google.protobuf.Int64Value"),
    ("thread_pool_name", 5, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, ".google.protobuf.StringValue"),
    ("allowed_batch_sizes", 6, _F.TYPE_INT64, _F.LABEL_REPEATED, None),
    ("pad_variable_length_inputs", 7, _F.TYPE_BOOL, _F.LABEL_OPTIONAL, None),
]
_PROMETHEUS_FIELDS = [
    ("enable", 1, _F.TYPE_BOOL, _F.LABEL_OPTIONAL, None),
    ("path", 2, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
]
_MONITORING_FIELDS = [
    (
        "prometheus_config",
        1,
        _F.TYPE_MESSAGE,
        _F.LABEL_OPTIONAL,
        ".tensorflow.serving.PrometheusConfig",
    ),
]


def _add_message(file_proto: descriptor_pb2.FileDescriptorProto, name: str, fields: list) -> None:
    message = file_proto.message_type.add(name=name)
    for field_name, number, field_type, label, type_name in fields:
        field = message.field.add(name=field_name, number=number, type=field_type, label=label)
        if type_name:
            field.type_name = type_name


def _build_pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(wrappers_pb2.DESCRIPTOR.serialized_pb))
    batching = descriptor_pb2.FileDescriptorProto(
        name="tests_transcribed/session_bundle_config.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    _add_message(batching, "BatchingParameters", _BATCHING_FIELDS)
    monitoring = descriptor_pb2.FileDescriptorProto(
        name="tests_transcribed/monitoring_config.proto",
        package="tensorflow.serving",
        syntax="proto3",
    )
    _add_message(monitoring, "PrometheusConfig", _PROMETHEUS_FIELDS)
    _add_message(monitoring, "MonitoringConfig", _MONITORING_FIELDS)
    pool.Add(batching)
    pool.Add(monitoring)
    return pool


_POOL = None


def _transcribed(full_name: str) -> Any:
    global _POOL
    if _POOL is None:
        _POOL = _build_pool()
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(full_name))


def _official(module: str, name: str) -> Any | None:
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def model_server_config_class() -> Any:
    """Return the official `tensorflow.serving.ModelServerConfig` message class."""
    from tensorflow_serving.config import model_server_config_pb2

    return model_server_config_pb2.ModelServerConfig


def batching_parameters_class() -> Any:
    """Return `tensorflow.serving.BatchingParameters`: official module if installed."""
    official = _official(
        "tensorflow_serving.servables.tensorflow.session_bundle_config_pb2", "BatchingParameters"
    )
    return official or _transcribed("tensorflow.serving.BatchingParameters")


def monitoring_config_class() -> Any:
    """Return `tensorflow.serving.MonitoringConfig`: official module if installed."""
    official = _official("tensorflow_serving.config.monitoring_config_pb2", "MonitoringConfig")
    return official or _transcribed("tensorflow.serving.MonitoringConfig")
