"""The export report: what was exported, from what, with which tools, and how it verified."""

from __future__ import annotations

import datetime
import json
import platform
from pathlib import Path
from typing import Any

from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saved_model_pb2

from serving_client.report import parse_report

__all__ = ["signature_specs", "write_report"]


def _shape(info: Any) -> list[int] | None:
    if info.tensor_shape.unknown_rank:
        return None
    return [int(d.size) for d in info.tensor_shape.dim]


def signature_specs(export_dir: Path) -> dict[str, Any]:
    """The SignatureDefs as TF Serving sees them: alias → dtype, shape; plus defaults."""
    import tensorflow as tf

    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((Path(export_dir) / "saved_model.pb").read_bytes())
    specs: dict[str, Any] = {}
    for name, sig in sorted(saved_model.meta_graphs[0].signature_def.items()):
        if name.startswith("__"):
            continue
        specs[name] = {
            "method_name": sig.method_name,
            "inputs": {a: {"dtype": types_pb2.DataType.Name(i.dtype), "shape": _shape(i)} for a, i in sorted(sig.inputs.items())},
            "outputs": {a: {"dtype": types_pb2.DataType.Name(i.dtype), "shape": _shape(i)} for a, i in sorted(sig.outputs.items())},
            "defaults": {a: tf.make_ndarray(t).tolist() for a, t in sorted(sig.defaults.items())},
        }
    return specs


def build_report(**sections: Any) -> dict[str, Any]:
    """Assembles the report with tool versions and a timestamp."""
    import keras
    import numpy
    import tensorflow as tf

    return {
        "created_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "tools": {
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": numpy.__version__,
            "python": platform.python_version(),
        },
        **sections,
    }


def write_report(report: dict[str, Any], path: Path) -> Path:
    """Writes `report` as indented JSON (parent directories created).

    The report is first typed with the one reader's schema (`serving_client.report`), so the
    exporter never publishes a report its readers would refuse.

    Raises:
        ReportError: if a field readers rely on is missing or mistyped (a writer bug).
    """
    parse_report(report, path=Path(path))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    return path
