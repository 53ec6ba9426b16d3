"""The pinned Parquet schema of the explanations table, and how one result becomes one row.

Downstream readers (audits, labelling tools, dashboards) depend on these column names and
types; a test pins them. Change them only with a version note in docs/batch.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from serving_client import contract

__all__ = ["DEAD_LETTER_FIELDS", "OUTPUT_SCHEMA", "TableBuilder", "row"]

OUTPUT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("model_version", pa.int64(), nullable=False),
        pa.field("signature", pa.string(), nullable=False),
        pa.field("predicted_class", pa.int32(), nullable=False),
        #: probability of the predicted class
        pa.field("probability", pa.float32(), nullable=False),
        pa.field("target_class", pa.int32(), nullable=False),
        #: probability of the explained class
        pa.field("target_probability", pa.float32(), nullable=False),
        #: the label feature when the input has one
        pa.field("label", pa.int32(), nullable=True),
        #: path methods only (integrated gradients); null otherwise
        pa.field("approximation_error", pa.float32(), nullable=True),
        #: faithfulness (--faithfulness_steps, float32 exports): deletion AUC (low is good) and
        #: insertion AUC (high is good) of the map for the target class; null otherwise
        pa.field("deletion_auc", pa.float32(), nullable=True),
        pa.field("insertion_auc", pa.float32(), nullable=True),
        pa.field("logits", pa.list_(pa.float32()), nullable=False),
        pa.field("probabilities", pa.list_(pa.float32()), nullable=False),
        #: the [saliency_height, saliency_width] map, row-major
        pa.field("saliency", pa.list_(pa.float32()), nullable=False),
        pa.field("saliency_height", pa.int32(), nullable=False),
        pa.field("saliency_width", pa.int32(), nullable=False),
        #: the heatmap PNG's path relative to the output directory; null when not drawn
        pa.field("heatmap", pa.string(), nullable=True),
    ]
)

#: Keys of each dead-letter JSON line.
DEAD_LETTER_FIELDS = ("id", "source", "stage", "reason")


def row(
    key: tuple[str, str, int | None],
    outputs: dict[str, np.ndarray],
    *,
    version: int,
    signature: str,
    heatmap: str | None,
) -> dict[str, Any]:
    """One table row from one example's signature outputs (see :data:`OUTPUT_SCHEMA`); the list
    columns are float32 numpy arrays, which pyarrow converts as they are."""
    record_id, source, label = key
    probabilities = np.asarray(outputs[contract.PROBABILITIES], dtype=np.float32)
    predicted = int(outputs[contract.PREDICTED_CLASS])
    target = int(outputs[contract.TARGET_CLASS])
    saliency = np.asarray(outputs[contract.SALIENCY], dtype=np.float32)
    error = outputs.get(contract.APPROXIMATION_ERROR)
    deletion, insertion = outputs.get("deletion_auc"), outputs.get("insertion_auc")
    return {
        "id": record_id,
        "source": source,
        "model_version": int(version),
        "signature": signature,
        "predicted_class": predicted,
        "probability": float(probabilities[predicted]),
        "target_class": target,
        "target_probability": float(probabilities[target]),
        "label": None if label is None else int(label),
        "approximation_error": None if error is None else float(error),
        "deletion_auc": None if deletion is None else float(deletion),
        "insertion_auc": None if insertion is None else float(insertion),
        # float32 arrays, not lists: pyarrow converts an array in one call, where a list of
        # Python floats costs a conversion per value each way (784 per digit's map).
        "logits": np.asarray(outputs[contract.LOGITS], dtype=np.float32),
        "probabilities": probabilities,
        "saliency": saliency.reshape(-1),
        "saliency_height": int(saliency.shape[0]),
        "saliency_width": int(saliency.shape[1]),
        "heatmap": heatmap,
    }


class TableBuilder:
    """Rows (dicts of :func:`row`) collected column by column into a ``pyarrow.Table`` of
    :data:`OUTPUT_SCHEMA`.

    Beam's ``WriteToParquet`` does the same per row with a schema lookup per column; here a row
    costs one list append per column, and each column is converted by pyarrow in one call.
    """

    def __init__(self) -> None:
        self._columns: list[list[Any]] = [[] for _ in OUTPUT_SCHEMA.names]
        self._append = list(zip(OUTPUT_SCHEMA.names, (column.append for column in self._columns), strict=True))

    def __len__(self) -> int:
        return len(self._columns[0])

    def add(self, table_row: dict[str, Any]) -> None:
        """Append one row (every column of :data:`OUTPUT_SCHEMA` must be a key)."""
        for name, append in self._append:
            append(table_row[name])

    def build(self) -> pa.Table:
        """The rows so far as a table; the builder is empty afterwards."""
        arrays = [pa.array(column, type=column_type) for column, column_type in zip(self._columns, OUTPUT_SCHEMA.types, strict=True)]
        for column in self._columns:
            column.clear()
        return pa.Table.from_arrays(arrays, schema=OUTPUT_SCHEMA)
