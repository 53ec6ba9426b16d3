"""One descriptor pool without TensorFlow: the client's, shared by the bundled server's
transcribed config messages, safe to first use from many threads."""

from __future__ import annotations

import threading

import pytest
from google.protobuf import descriptor_pb2

from serving_client import _protos


def _file(name: str, message: str) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(name=name, package="pooltest", syntax="proto3")
    proto.message_type.add(name=message).field.add(
        name="value", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    )
    return proto


def test_added_files_join_the_one_pool_once_even_from_many_threads():
    proto = _file("pooltest/threads.proto", "Threads")
    barrier = threading.Barrier(8)
    classes: list[type] = []
    errors: list[BaseException] = []

    def add() -> None:
        try:
            barrier.wait()
            _protos.add_file(proto)
            classes.append(_protos.message_class("pooltest.Threads"))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=add) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(set(classes)) == 1
    assert classes[0].DESCRIPTOR.file.pool is _protos.pool()
    assert classes[0](value="x").SerializeToString() == b"\n\x01x"


def test_a_different_file_under_a_taken_name_is_refused():
    _protos.add_file(_file("pooltest/taken.proto", "Taken"))
    with pytest.raises(ValueError, match="A different 'pooltest/taken.proto' was already added"):
        _protos.add_file(_file("pooltest/taken.proto", "Other"))
    with pytest.raises(ValueError, match="part of _descriptors.binpb"):
        _protos.add_file(_file("tensorflow/core/framework/tensor.proto", "Clash"))


def test_the_servers_transcribed_config_messages_live_in_the_client_pool():
    from model_server import _config_protos

    for name in ("BatchingParameters", "SSLConfig", "MonitoringConfig"):
        cls = _config_protos._transcribed(f"tensorflow.serving.{name}")
        assert cls.DESCRIPTOR.file.pool is _protos.pool()
        assert cls is _config_protos._transcribed(f"tensorflow.serving.{name}")
    batching = _config_protos._transcribed("tensorflow.serving.BatchingParameters")
    parsed = _config_protos.parse_text(batching, "max_batch_size { value: 8 }", "inline")
    assert parsed.max_batch_size.value == 8
    # The transcription's Int64Value is the pool's own wrappers.proto, the one model.proto uses.
    spec = _protos.message_class("tensorflow.serving.ModelSpec")
    assert (
        batching.DESCRIPTOR.fields_by_name["max_batch_size"].message_type
        is spec.DESCRIPTOR.fields_by_name["version"].message_type
    )
