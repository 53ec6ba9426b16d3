"""Recording default values for optional signature inputs in `saved_model.pb`.

Two consumers need to know that `target_class` may be omitted:
- TF Serving reads `SignatureDef.defaults` (see `VerifyRequestInputsSize` in its
  `predict_util.cc`) and feeds the default when a request leaves the input out;
- the TF1 session loader and `saved_model_cli run` feed only what they are given, so the
  graph input itself must be a `PlaceholderWithDefault`.
`tf.saved_model.save` records neither for concrete-function signatures, so both are
written here, on the file, before the export is verified.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

__all__ = ["record_signature_defaults"]


def record_signature_defaults(
    export_dir: Path, defaults: Mapping[str, Mapping[str, np.ndarray]]
) -> None:
    """Writes input defaults into every MetaGraph of the SavedModel at `export_dir`.

    Args:
        export_dir: A SavedModel directory.
        defaults: signature name → input alias → default value.

    Raises:
        KeyError: If a signature or input named in `defaults` does not exist.
    """
    path = Path(export_dir) / "saved_model.pb"
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString(path.read_bytes())
    for meta_graph in saved_model.meta_graphs:
        nodes = {node.name: node for node in meta_graph.graph_def.node}
        for signature_name, inputs in defaults.items():
            signature = meta_graph.signature_def[signature_name]
            for alias, value in inputs.items():
                tensor_proto = tf.make_tensor_proto(np.asarray(value))
                signature.defaults[alias].CopyFrom(tensor_proto)
                node = nodes[signature.inputs[alias].name.split(":")[0]]
                if node.op == "PlaceholderWithDefault":
                    continue
                const = meta_graph.graph_def.node.add()
                const.name = f"{node.name}/default_value"
                const.op = "Const"
                const.attr["dtype"].type = node.attr["dtype"].type
                const.attr["value"].tensor.CopyFrom(tensor_proto)
                dtype, shape = node.attr["dtype"], node.attr["shape"]
                node.op = "PlaceholderWithDefault"
                del node.input[:]
                node.input.append(const.name)
                kept = {"dtype": type(dtype)(), "shape": type(shape)()}
                kept["dtype"].CopyFrom(dtype)
                kept["shape"].CopyFrom(shape)
                if kept["shape"].WhichOneof("value") is None:
                    # An unknown-rank input (target_class: [batch] or [batch, K]) has no shape attr;
                    # PlaceholderWithDefault requires one.
                    kept["shape"].shape.unknown_rank = True
                node.attr.clear()
                for key, attr in kept.items():
                    node.attr[key].CopyFrom(attr)
    path.write_bytes(saved_model.SerializeToString(deterministic=True))
