"""One Keras TensorFlow-backend function replaced while a context is active (signature tracing).

The exporter swaps a few of `keras.src.backend.tensorflow.nn`'s functions for equivalents that
serve better (`_grouped_conv`, `_activations`) only while its signatures trace; Keras's layers look
the function up on that module at each call. Re-entrant per name, and thread-safe: nested or
concurrent traces keep the replacement until the outermost one ends.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from keras.src.backend.tensorflow import nn as _backend_nn

__all__ = ["backend_function_replaced"]

_lock = threading.Lock()
_depth: dict[str, int] = {}
_originals: dict[str, Any] = {}


@contextlib.contextmanager
def backend_function_replaced(name: str, replacement: Callable[..., Any]) -> Iterator[None]:
    """While active, `keras.src.backend.tensorflow.nn.<name>` is `replacement`."""
    with _lock:
        if not _depth.get(name):
            _originals[name] = getattr(_backend_nn, name)
            setattr(_backend_nn, name, replacement)
        _depth[name] = _depth.get(name, 0) + 1
    try:
        yield
    finally:
        with _lock:
            _depth[name] -= 1
            if not _depth[name]:
                setattr(_backend_nn, name, _originals.pop(name))
