"""One loaded model version: its own Graph and TF1 Session, kept alive while requests use it."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ._xla import XlaRequiredError, xla_compiled_functions


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
        """One session run by tensor names, through a runner cached per (fetches, feed names).

        `Session.run(fetches, feed_dict)` rebuilds its fetch and feed handlers in Python on
        every call, and `make_callable` with a `feed_list` only wraps `Session.run` (it
        has no fast path for feeds): 0.3-0.4 ms of the demo CNN's ~2.3 ms explain call at
        batch 1, in a py-spy profile of the server. `_SessionRunner` resolves the tensors
        once and calls the session's C run per request.

        Raises:
            tf.errors.OpError: as `Session.run`.
        """
        key = (tuple(fetches), tuple(feeds))
        run = self._callables.get(key)
        if run is None:
            with self._callables_lock:
                run = self._callables.get(key)
                if run is None:
                    run = _SessionRunner(self.session, list(fetches), list(feeds))
                    self._callables[key] = run
        return run(list(feeds.values()))

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


class _SessionRunner:
    """`Session.run` for fixed fetch and feed tensor names, without its per-call Python work.

    It does what `Session.run` does for tensors, in the same order: the closed-session check,
    `_extend_graph`, then `TF_SessionRun` inside `_do_call` (so an op error reaches the caller
    as the same `tf.errors.OpError`, message included). Feeds are arrays that request validation
    already checked against the signature; one whose dtype or shape the placeholder would refuse,
    or a session without the private methods this relies on, goes through `Session.run`, so
    every refusal keeps its wording.
    """

    def __init__(self, session: Any, fetches: list[str], feeds: list[str]) -> None:
        graph = session.graph
        self._session = session
        self._fetch_names = fetches
        self._feed_names = feeds
        self._fast = all(
            hasattr(session, attr) for attr in ("_do_call", "_call_tf_sessionrun", "_extend_graph")
        )
        fetch_tensors = [graph.as_graph_element(name) for name in fetches]
        feed_tensors = [graph.as_graph_element(name) for name in feeds]
        self._fetch_outputs = [tensor._as_tf_output() for tensor in fetch_tensors]
        self._feed_outputs = [tensor._as_tf_output() for tensor in feed_tensors]
        # What Session.run's feed handling would accept without converting: the exact numpy
        # dtype, and a shape compatible with the placeholder's static shape.
        self._feed_checks = [
            (
                tensor.dtype.as_numpy_dtype,
                None if tensor.shape.rank is None else tuple(tensor.shape.as_list()),
                graph.is_feedable(tensor),
            )
            for tensor in feed_tensors
        ]

    def __call__(self, values: list[Any]) -> list[Any]:
        session = self._session
        if not self._fast or session._closed or not self._feedable(values):
            feed_dict = dict(zip(self._feed_names, values, strict=True))
            return list(session.run(self._fetch_names, feed_dict=feed_dict))
        session._extend_graph()
        feeds = dict(zip(self._feed_outputs, values, strict=True))
        return list(
            session._do_call(session._call_tf_sessionrun, None, feeds, self._fetch_outputs, [], None)
        )

    def _feedable(self, values: list[Any]) -> bool:
        for value, (dtype, dims, feedable) in zip(values, self._feed_checks, strict=True):
            if not feedable or type(value) is not np.ndarray or value.dtype != dtype:
                return False
            if dims is not None and (
                len(dims) != value.ndim
                or any(d is not None and d != n for d, n in zip(dims, value.shape, strict=True))
            ):
                return False
        return True


def load_saved_model(
    name: str, version: int, path: Path, *, xla_cpu_compilation_enabled: bool = False
) -> LoadedServable:
    """Load ``path`` with ``tf.compat.v1.saved_model.loader.load`` in a fresh Graph/Session.

    Args:
        name: The model's name.
        version: The version number.
        path: The version directory.
        xla_cpu_compilation_enabled: ``--xla_cpu_compilation_enabled``; without it a graph
            that must be XLA-compiled is refused, as TF Serving fails it (``model_server._xla``).

    Raises:
        XlaRequiredError: the graph needs XLA and ``xla_cpu_compilation_enabled`` is false.
        Exception: whatever the loader raises (missing/corrupt saved_model.pb, variables, ...).
    """
    import tensorflow as tf

    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph, config=session_config())
    try:
        with graph.as_default(), _quiet_deprecations():
            meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path))
        if not xla_cpu_compilation_enabled and (functions := xla_compiled_functions(meta_graph.graph_def)):
            raise XlaRequiredError(str(path), functions)
    except BaseException:
        session.close()
        raise
    return LoadedServable(name, version, path, graph, session, meta_graph)


def session_config() -> Any:
    """The ConfigProto of every version's Session: TF's defaults, thread spinning off.

    TF's inter- and intra-op thread pools (one per process each, made with the first
    Session's config) spin after their work by default. In the server that spinning takes
    the cores from the gRPC and Python work of the same request, which follows at once: at
    batch 1 on the demo CNN (2 cores) it cost ~0.9 ms of the gRPC round trip, at batch 32
    ~0.7 ms (docs/benchmarks.md, "Server overhead"). Thread counts stay TF's (and TF
    Serving's) default, all cores. TF Serving sets the same field through its
    ``--platform_config_file`` (``session_config { experimental { disable_thread_spinning:
    true } }``).

    Returns:
        A ``tf.compat.v1.ConfigProto``.
    """
    import tensorflow as tf

    config = tf.compat.v1.ConfigProto()
    config.experimental.disable_thread_spinning = True
    return config


def _quiet_deprecations() -> contextlib.AbstractContextManager[Any]:
    # The TF1 loader is deprecated in favour of tf.saved_model.load, but it is exactly the path
    # TF Serving takes, so its warning is noise here.
    try:
        from tensorflow.python.util import deprecation
    except ImportError:  # private module moved: keep the warning rather than fail
        return contextlib.nullcontext()
    return deprecation.silence()
