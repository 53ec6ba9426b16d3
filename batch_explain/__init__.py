"""Explain whole datasets with an export's signatures on Apache Beam (``saliency-batch``).

The same pipeline runs locally (DirectRunner, several processes) and at scale (Dataflow, Flink,
Spark). Needs the ``batch`` extra (Apache Beam), installed with ``constraints-batch.txt``.
"""

from ._decode import DecodeError, Record
from ._heatmaps import HeatmapOptions
from ._model import ExportSignature, SignatureModelHandler, read_signature, resolve_version
from ._pipeline import INPUT_FORMATS, BatchOptions, build_pipeline
from ._schema import DEAD_LETTER_FIELDS, OUTPUT_SCHEMA

__all__ = [
    "DEAD_LETTER_FIELDS",
    "INPUT_FORMATS",
    "OUTPUT_SCHEMA",
    "BatchOptions",
    "DecodeError",
    "ExportSignature",
    "HeatmapOptions",
    "Record",
    "SignatureModelHandler",
    "build_pipeline",
    "read_signature",
    "resolve_version",
]
