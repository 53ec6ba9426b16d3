"""Running a SavedModel through the TF1 session loader: TF Serving's own loading path.

`tf.saved_model.load` (TF2) can succeed where TF Serving's C++ loader fails, so every
export is checked this way before it is published.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import tensorflow as tf

__all__ = ["RecordedRun", "Tf1SavedModel", "recording_runs"]


@dataclasses.dataclass(frozen=True)
class RecordedRun:
    """One `Tf1SavedModel.run` seen by `recording_runs`: its feed and what it returned."""

    export_dir: Path
    signature: str
    inputs: Mapping[str, np.ndarray]
    outputs: Mapping[str, np.ndarray]


_RECORDING: contextvars.ContextVar[list[RecordedRun] | None] = contextvars.ContextVar(
    "tf1_recording", default=None
)


@contextlib.contextmanager
def recording_runs() -> Iterator[list[RecordedRun]]:
    """Collects every `Tf1SavedModel.run` made inside the block (in this context).

    Lets another check replay exactly the TF1 checks' feeds (e.g. through the C++
    loader) and compare with their outputs, without loading and running again.
    """
    runs: list[RecordedRun] = []
    token = _RECORDING.set(runs)
    try:
        yield runs
    finally:
        _RECORDING.reset(token)


class Tf1SavedModel:
    """A SavedModel loaded with `tf.compat.v1.saved_model.loader.load` in its own graph.

    Use as a context manager, or call `close()`.
    """

    def __init__(self, export_dir: str | Path, tags: tuple[str, ...] = ("serve",)) -> None:
        self.export_dir = Path(export_dir)
        self._graph = tf.Graph()
        self._session = tf.compat.v1.Session(graph=self._graph)
        with self._graph.as_default():
            self.meta_graph = tf.compat.v1.saved_model.loader.load(
                self._session, list(tags), str(export_dir)
            )
        self.signature_defs = dict(self.meta_graph.signature_def)

    def run(
        self,
        signature: str,
        inputs: Mapping[str, np.ndarray],
        outputs: tuple[str, ...] | None = None,
    ) -> dict[str, np.ndarray]:
        """Runs a signature, feeding only the given inputs (defaults apply to the rest).

        Args:
            signature: Signature name.
            inputs: alias → array.
            outputs: Output aliases to fetch (all by default).

        Returns:
            alias → array.
        """
        sig = self.signature_defs[signature]
        feed = {sig.inputs[alias].name: value for alias, value in inputs.items()}
        aliases = outputs or tuple(sig.outputs)
        fetches = {alias: sig.outputs[alias].name for alias in aliases}
        result = self._session.run(fetches, feed_dict=feed)
        recording = _RECORDING.get()
        if recording is not None:
            recording.append(RecordedRun(self.export_dir, signature, dict(inputs), result))
        return result

    def close(self) -> None:
        """Releases the session."""
        self._session.close()

    def __enter__(self) -> Tf1SavedModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
