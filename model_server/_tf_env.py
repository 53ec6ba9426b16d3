"""The TensorFlow runtime settings this project serves with, applied before TensorFlow loads.

One home for them: the bundled server (`model_server/__init__.py`), the exporter (its
verification runs in the exporting process, `exporter/__init__.py`), the C++-loader child
(`exporter._cpp_loader.CppRuntime`) and `make bench` all call `apply_defaults()` or pass
`child_environment()`, and `configs/` sets the same variables for TF Serving.

`TF_ENABLE_ONEDNN_OPTS=1`: TensorFlow's oneDNN kernels. TF reads the variable once, when its
library loads (`IsMklEnabled()` in tensorflow/core/util/port.cc), and the stock
`tensorflow_model_server` is built with oneDNN (tensorflow/serving `.bazelrc`:
`build --define=build_with_onednn_v2=true`), so the same variable turns them on there. On the
2-core AMD EPYC of the benchmarks TF leaves them off, and the input gradient of the
convolutions (`Conv2DBackpropInput`) is then 93 % of an explain call: ResNet50V2 at 64×64,
batch 32, explain 14.2 s → 1.2 s. See README "Benchmarks".

This module imports nothing heavy: it must run before anything imports TensorFlow.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, MutableMapping

__all__ = ["DEFAULTS", "apply_defaults", "child_environment", "loaded_settings", "tensorflow_loaded"]

#: Variable → value set when the user has not set the variable.
DEFAULTS: Mapping[str, str] = {"TF_ENABLE_ONEDNN_OPTS": "1"}


def tensorflow_loaded() -> bool:
    """Whether TensorFlow's library is already loaded in this process (then it is too late)."""
    return any(name in sys.modules for name in ("tensorflow", "tensorflow.python"))


def apply_defaults(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Sets each of `DEFAULTS` in `environ` (this process's environment) unless already set.

    A value the user set, e.g. ``TF_ENABLE_ONEDNN_OPTS=0``, is kept. Called after TensorFlow
    was imported, the variables still reach subprocesses, but this process's TF keeps the
    setting it loaded with.

    Args:
        environ: The environment to change; `os.environ` by default.

    Returns:
        The variables this call set (empty when the user had set them all).
    """
    target = os.environ if environ is None else environ
    applied = {}
    for name, value in DEFAULTS.items():
        if name not in target:
            target[name] = value
            applied[name] = value
    return applied


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment with `DEFAULTS` filled in, then `extra` on top.

    For a subprocess that loads TensorFlow's library (the C++-loader child, the server
    subprocess): it gets the served settings even when this process loaded TF without them.
    """
    environment = dict(os.environ)
    apply_defaults(environment)
    environment.update(extra or {})
    return environment


def loaded_settings() -> dict[str, str]:
    """The settings this process's TensorFlow loaded with, as the variables that choose them.

    Empty when TensorFlow is not loaded. A child that must run the same kernels as this
    process (the C++-loader check of an export, which compares two loaders of one library)
    takes these on top of `child_environment()`: when this process imported TensorFlow before
    `apply_defaults()` ran, it keeps the setting it loaded with, and a child given the served
    default would run other kernels (oneDNN's against Eigen's sum in another order: IG's
    `approximation_error` moved 3.2e-5 on the test CNN, over the loaders' 1e-5).
    """
    if not tensorflow_loaded():
        return {}
    from tensorflow.python.util import _pywrap_util_port  # TF is loaded: no import cost

    return {"TF_ENABLE_ONEDNN_OPTS": "1" if _pywrap_util_port.IsMklEnabled() else "0"}
