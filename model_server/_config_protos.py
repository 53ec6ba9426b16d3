"""TF Serving config messages the ``tensorflow-serving-api`` wheel does not ship.

``BatchingParameters`` (``servables/tensorflow/session_bundle_config.proto``), ``SSLConfig``
(``config/ssl_config.proto``) and ``MonitoringConfig`` (``config/monitoring_config.proto``; the
server does not use it, the production-config tests parse ``configs/monitoring.config`` with
it) are absent from the 2.21 wheel, so they are rebuilt here from the
upstream ``.proto`` files: same package, message names, field names, numbers and types, in
``serving_client``'s private descriptor pool (the project's one pool without TensorFlow) so they
never clash with official modules a later wheel may add. The official module wins when it is
importable.
"""

from __future__ import annotations

import importlib
from typing import Any

from google.protobuf import descriptor_pb2

_F = descriptor_pb2.FieldDescriptorProto
_INT64 = ".google.protobuf.Int64Value"

# (name, number, type, label, type_name), transcribed from the upstream .proto files.
_BATCHING_FIELDS = [
    ("max_batch_size", 1, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, _INT64),
    ("batch_timeout_micros", 2, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, _INT64),
    ("max_enqueued_batches", 3, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, _INT64),
    ("num_batch_threads", 4, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, _INT64),
    ("thread_pool_name", 5, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, ".google.protobuf.StringValue"),
    ("allowed_batch_sizes", 6, _F.TYPE_INT64, _F.LABEL_REPEATED, None),
    ("pad_variable_length_inputs", 7, _F.TYPE_BOOL, _F.LABEL_OPTIONAL, None),
]
_SSL_FIELDS = [
    ("server_key", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
    ("server_cert", 2, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
    ("custom_ca", 3, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
    ("client_verify", 4, _F.TYPE_BOOL, _F.LABEL_OPTIONAL, None),
]
_PROMETHEUS_FIELDS = [
    ("enable", 1, _F.TYPE_BOOL, _F.LABEL_OPTIONAL, None),
    ("path", 2, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
]
_MONITORING_FIELDS = [
    ("prometheus_config", 1, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, ".tensorflow.serving.PrometheusConfig"),
]


def _file(name: str, messages: dict[str, list], deps: list[str]) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(
        name=name, package="tensorflow.serving", syntax="proto3", dependency=deps
    )
    for message_name, fields in messages.items():
        message = proto.message_type.add(name=message_name)
        for field_name, number, field_type, label, type_name in fields:
            field = message.field.add(name=field_name, number=number, type=field_type, label=label)
            if type_name:
                field.type_name = type_name
    return proto


def _transcribed(full_name: str) -> Any:
    # The project's one TF-free pool (thread-safe; adding the same file twice is a no-op).
    from serving_client import _protos

    for proto in _transcribed_files():
        _protos.add_file(proto)
    return _protos.message_class(full_name)


def _transcribed_files() -> list[descriptor_pb2.FileDescriptorProto]:
    """The three transcribed files; google/protobuf/wrappers.proto is in the pool already."""
    return [
        _file(
            "model_server_transcribed/session_bundle_config.proto",
            {"BatchingParameters": _BATCHING_FIELDS},
            ["google/protobuf/wrappers.proto"],
        ),
        _file("model_server_transcribed/ssl_config.proto", {"SSLConfig": _SSL_FIELDS}, []),
        _file(
            "model_server_transcribed/monitoring_config.proto",
            {"PrometheusConfig": _PROMETHEUS_FIELDS, "MonitoringConfig": _MONITORING_FIELDS},
            [],
        ),
    ]


def _official(module: str, name: str) -> Any | None:
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def batching_parameters_class() -> Any:
    """``tensorflow.serving.BatchingParameters``."""
    return _official(
        "tensorflow_serving.servables.tensorflow.session_bundle_config_pb2", "BatchingParameters"
    ) or _transcribed("tensorflow.serving.BatchingParameters")


def ssl_config_class() -> Any:
    """``tensorflow.serving.SSLConfig``."""
    return _official("tensorflow_serving.config.ssl_config_pb2", "SSLConfig") or _transcribed(
        "tensorflow.serving.SSLConfig"
    )


def monitoring_config_class() -> Any:
    """``tensorflow.serving.MonitoringConfig``."""
    return _official("tensorflow_serving.config.monitoring_config_pb2", "MonitoringConfig") or _transcribed(
        "tensorflow.serving.MonitoringConfig"
    )


def parse_text(cls: Any, text: str, source: str) -> Any:
    """Parse a text-format message of ``cls``; unknown fields are errors.

    Raises:
        ValueError: naming the file and the parser's complaint.
    """
    from google.protobuf import text_format

    message = cls()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        raise ValueError(f"{source}: not a text-format {cls.DESCRIPTOR.full_name}: {exc}") from exc
    return message
