"""Regenerate ``_descriptors.binpb`` from the installed ``tensorflow-serving-api``.

Run as ``python -m serving_client._generate_descriptors`` after upgrading
``tensorflow-serving-api``. This script imports TensorFlow; the client runtime never does:
it only reads the file written here.

The output is a serialized ``google.protobuf.FileDescriptorSet`` holding every ``.proto`` file
the client needs plus all their transitive dependencies, sorted by file name and serialized
deterministically so that regenerating with the same packages gives identical bytes (a test
checks the checked-in file is up to date).
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

DESCRIPTOR_PATH = Path(__file__).with_name("_descriptors.binpb")

# The generated modules whose files (and transitive dependencies) the client speaks.
ROOT_MODULES = (
    "tensorflow_serving.apis.predict_pb2",
    "tensorflow_serving.apis.get_model_metadata_pb2",
    "tensorflow_serving.apis.get_model_status_pb2",
    "tensorflow_serving.apis.model_pb2",
    "tensorflow_serving.apis.prediction_service_pb2",
    "tensorflow_serving.apis.model_service_pb2",
    "tensorflow.core.framework.tensor_pb2",
    "tensorflow.core.framework.tensor_shape_pb2",
    "tensorflow.core.framework.types_pb2",
    "tensorflow.core.protobuf.meta_graph_pb2",
)


def build_descriptor_set() -> bytes:
    """Collect the client's proto files and their dependencies into a FileDescriptorSet.

    Returns:
        The deterministic serialization of a ``FileDescriptorSet``, files sorted by name.

    Raises:
        ImportError: if ``tensorflow-serving-api`` (and so TensorFlow) is not installed.
    """
    from google.protobuf import descriptor_pb2

    files = {}
    pending = [importlib.import_module(name).DESCRIPTOR for name in ROOT_MODULES]
    while pending:
        file_descriptor = pending.pop()
        if file_descriptor.name in files:
            continue
        files[file_descriptor.name] = file_descriptor
        pending.extend(file_descriptor.dependencies)

    descriptor_set = descriptor_pb2.FileDescriptorSet()
    for name in sorted(files):
        files[name].CopyToProto(descriptor_set.file.add())
    return descriptor_set.SerializeToString(deterministic=True)


def main(argv: list[str] | None = None) -> int:
    """Write the descriptor set (default: next to this module) and print what was written."""
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DESCRIPTOR_PATH, help="output file")
    args = parser.parse_args(argv)
    data = build_descriptor_set()
    args.out.write_bytes(data)
    print(f"wrote {len(data)} bytes to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
