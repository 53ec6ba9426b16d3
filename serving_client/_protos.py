"""The TF Serving message classes, built from the checked-in descriptor set.

The classes live in a private ``DescriptorPool`` rather than the default one, so the client
never clashes with TensorFlow's own generated modules when both are imported in one process,
and importing the client never imports TensorFlow. It is the project's one pool for protos
without TensorFlow: other packages add the files they need with :func:`add_file` (the bundled
server's transcribed config messages) instead of keeping a pool of their own.
"""

from __future__ import annotations

import functools
import threading
from importlib import resources
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

DESCRIPTOR_RESOURCE = "_descriptors.binpb"

PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"
GET_MODEL_METADATA_METHOD = "/tensorflow.serving.PredictionService/GetModelMetadata"
GET_MODEL_STATUS_METHOD = "/tensorflow.serving.ModelService/GetModelStatus"

# functools.cache does not stop two threads from both computing a first call: clients created
# in several threads at once then got two pools, and a PredictRequest of one refused the other's
# TensorProto ("CopyFrom() must be instance of same class"). One lock makes the pool unique.
_LOCK = threading.RLock()


def pool() -> descriptor_pool.DescriptorPool:
    """Return the private pool holding every file of the checked-in descriptor set."""
    with _LOCK:
        return _build_pool()


@functools.cache
def _build_pool() -> descriptor_pool.DescriptorPool:
    data = resources.files(__package__).joinpath(DESCRIPTOR_RESOURCE).read_bytes()
    descriptor_set = descriptor_pb2.FileDescriptorSet.FromString(data)
    by_name = {file.name: file for file in descriptor_set.file}
    private_pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    # The pool needs a file's dependencies before the file itself; the set is sorted by name,
    # not by dependency, so add depth-first.
    def add(name: str) -> None:
        if name in added:
            return
        if name not in by_name:
            raise RuntimeError(
                f"{DESCRIPTOR_RESOURCE} is incomplete: it lacks {name!r}. "
                "Regenerate it with `python -m serving_client._generate_descriptors`."
            )
        for dependency in by_name[name].dependency:
            add(dependency)
        private_pool.Add(by_name[name])
        added.add(name)

    for name in sorted(by_name):
        add(name)
    return private_pool


# Files added with add_file, by name: a second add of the same file is a no-op.
_ADDED: dict[str, bytes] = {}


def add_file(file_proto: descriptor_pb2.FileDescriptorProto) -> None:
    """Add a ``.proto`` file (its dependencies already in the pool) to the shared pool.

    Idempotent and thread-safe: adding the same file again does nothing.

    Args:
        file_proto: the file; its name must not be one of the checked-in set's files.

    Raises:
        ValueError: if a different file of that name was added before, or the name is one
            of the checked-in descriptor set's files.
        TypeError: (from protobuf) if a message of the file is already defined elsewhere.
    """
    data = file_proto.SerializeToString(deterministic=True)
    with _LOCK:
        previous = _ADDED.get(file_proto.name)
        if previous == data:
            return
        if previous is not None:
            raise ValueError(
                f"A different {file_proto.name!r} was already added to the descriptor pool; "
                "expected the same file each time."
            )
        shared = pool()
        try:
            shared.FindFileByName(file_proto.name)
        except KeyError:
            shared.Add(file_proto)
            _ADDED[file_proto.name] = data
            return
        raise ValueError(
            f"{file_proto.name!r} is part of {DESCRIPTOR_RESOURCE}; add files under another name."
        )


@functools.cache
def message_class(full_name: str) -> Any:
    """Return the message class for a fully qualified proto name, e.g. ``tensorflow.TensorProto``."""
    with _LOCK:
        return message_factory.GetMessageClass(pool().FindMessageTypeByName(full_name))


def enum_value(enum_full_name: str, value_name: str) -> int:
    """Return the number of ``value_name`` in the enum ``enum_full_name``."""
    return pool().FindEnumTypeByName(enum_full_name).values_by_name[value_name].number


def enum_name(enum_full_name: str, number: int) -> str:
    """Return the name of ``number`` in ``enum_full_name``, or ``"<number>"`` if unknown."""
    value = pool().FindEnumTypeByName(enum_full_name).values_by_number.get(number)
    return value.name if value is not None else str(number)

