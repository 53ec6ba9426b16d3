"""One loaded model version: its own Graph and TF1 Session, kept alive while requests use it."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any


class LoadedServable:
    """A SavedModel version loaded through the TF1 session loader (TF Serving's path).

    Requests take a reference with ``acquire()``/``release()``; ``close()`` waits for the last
    reference before closing the session, so a version being unloaded finishes its in-flight
    requests.
    """

    def __init__(
        self, name: str, version: int, path: Path, graph: Any, session: Any, meta_graph: Any
    ) -> None:
        """Args are TF objects (tf.Graph, tf.compat.v1.Session, MetaGraphDef): Any to the checker."""
        self.name = name
        self.version = version
        self.path = path
        self.graph = graph
        self.session = session
        self.meta_graph = meta_graph
        self.signature_defs = dict(meta_graph.signature_def)
        self._refs = 0
        self._closed = False
        self._cond = threading.Condition()
        self._callables: dict[tuple[tuple[str, ...], tuple[str, ...]], Callable[..., Any]] = {}
        self._callables_lock = threading.Lock()

    def run(self, fetches: list[str], feeds: dict[str, Any]) -> list[Any]:
        """One session run by tensor names, through a callable cached per (fetches, feed names).

        `Session.run(fetches, feed_dict)` rebuilds its fetch and feed handlers in Python on
        every call (0.2-0.4 ms at batch 1, a sixth of the demo CNN's explain call in a py-spy
        profile of the server); `make_callable` does that once per signature.

        Raises:
            tf.errors.OpError: as `Session.run`.
        """
        key = (tuple(fetches), tuple(feeds))
        run = self._callables.get(key)
        if run is None:
            with self._callables_lock:
                run = self._callables.get(key)
                if run is None:
                    run = self.session.make_callable(list(fetches), feed_list=list(feeds))
                    self._callables[key] = run
        return list(run(*feeds.values()))

    def acquire(self) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError(f"servable {self.name} version {self.version} is closed")
            self._refs += 1

    def release(self) -> None:
        with self._cond:
            self._refs -= 1
            if self._refs == 0:
                self._cond.notify_all()

    @property
    def in_flight(self) -> int:
        with self._cond:
            return self._refs

    def close(self, timeout: float | None = None) -> bool:
        """Wait for in-flight requests (up to ``timeout`` seconds), then close the session.

        Returns:
            True if every request finished first; False if the wait timed out (the session is
            closed anyway, failing what is still running).
        """
        with self._cond:
            drained = self._cond.wait_for(lambda: self._refs == 0, timeout=timeout)
            self._closed = True
        self.session.close()
        return drained


def load_saved_model(name: str, version: int, path: Path) -> LoadedServable:
    """Load ``path`` with ``tf.compat.v1.saved_model.loader.load`` in a fresh Graph/Session.

    Raises:
        Exception: whatever the loader raises (missing/corrupt saved_model.pb, variables, ...).
    """
    import tensorflow as tf

    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    try:
        with graph.as_default(), _quiet_deprecations():
            meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path))
    except BaseException:
        session.close()
        raise
    return LoadedServable(name, version, path, graph, session, meta_graph)


def _quiet_deprecations() -> contextlib.AbstractContextManager[Any]:
    # The TF1 loader is deprecated in favour of tf.saved_model.load, but it is exactly the path
    # TF Serving takes, so its warning is noise here.
    try:
        from tensorflow.python.util import deprecation
    except ImportError:  # private module moved: keep the warning rather than fail
        return contextlib.nullcontext()
    return deprecation.silence()
