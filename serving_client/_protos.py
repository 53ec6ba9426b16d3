"""The TF Serving message classes, built from the checked-in descriptor set.

The classes live in a private ``DescriptorPool`` rather than the default one, so the client
never clashes with TensorFlow's own generated modules when both are imported in one process,
and importing the client never imports TensorFlow.
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

