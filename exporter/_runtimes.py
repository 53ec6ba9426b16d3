"""TensorFlow runtimes for the C++ loader: the installed one, or an older release's, cached.

Every `tensorflow-cpu` wheel on the package index ships `tensorflow/libtensorflow_cc.so.2`
and `tensorflow/libtensorflow_framework.so.2`, the runtime TF Serving of the same release
is built from. `runtime_library("2.14.1", cache)` downloads the wheel once with
`pip download --no-deps`, extracts only those two files into `cache/tf-2.14.1/` and
deletes the wheel; later calls reuse the directory. TensorFlow is never imported here.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from exporter._cpp_loader import FRAMEWORK_NAME, LIBRARY_NAME, CppLoaderError, installed_library

__all__ = ["RuntimeFetchError", "installed_version", "runtime_library"]

#: The wheel whose libraries are fetched: CPU-only, same C++ runtime as `tensorflow`.
PACKAGE = "tensorflow-cpu"


class RuntimeFetchError(CppLoaderError):
    """A runtime's wheel could not be downloaded or lacks the libraries."""

    def __init__(self, message: str, library: Path | str) -> None:
        super().__init__(message, code=None, library=library, stage="fetch")


def installed_version() -> str:
    """The installed TensorFlow's version, from its package metadata (TF is not imported)."""
    for name in ("tensorflow", "tensorflow-cpu"):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    raise RuntimeFetchError("TensorFlow is not installed.", LIBRARY_NAME)


def runtime_library(version: str, cache_dir: str | Path, *, timeout: float = 900.0) -> Path:
    """The libtensorflow_cc.so.2 of TF `version`: the installed one, else cached (fetched once).

    Args:
        version: A release on the package index, e.g. "2.14.1"; the installed version
            (or "installed") gives the installed wheel's library.
        cache_dir: Where `tf-<version>/` directories are kept.
        timeout: Seconds the download may take.

    Returns:
        The path of `libtensorflow_cc.so.2` (with `libtensorflow_framework.so.2` beside it).

    Raises:
        RuntimeFetchError: pip could not download `tensorflow-cpu==version` (message
            with pip's output), or the wheel lacks the libraries.
    """
    if version in ("installed", installed_version()):
        return installed_library()
    target = Path(cache_dir) / f"tf-{version}"
    library = target / LIBRARY_NAME
    if library.is_file() and (target / FRAMEWORK_NAME).is_file():
        return library
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".fetch-{version}-") as tmp:
        command = [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
            "--dest", tmp, f"{PACKAGE}=={version}",
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as error:
            raise RuntimeFetchError(f"`{' '.join(command)}` took over {timeout:.0f} s.", library) from error
        if done.returncode != 0:
            raise RuntimeFetchError(
                f"Cannot fetch TF {version}: `{' '.join(command[2:])}` exited {done.returncode}: "
                f"{(done.stderr or done.stdout).strip()[-2000:]}",
                library,
            )
        wheels = sorted(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise RuntimeFetchError(f"Expected one wheel from pip download; found {[w.name for w in wheels]}.", library)
        staging = Path(tmp) / "libs"
        staging.mkdir()
        with zipfile.ZipFile(wheels[0]) as wheel:
            for name in (LIBRARY_NAME, FRAMEWORK_NAME):
                member = f"tensorflow/{name}"
                try:
                    with wheel.open(member) as source, open(staging / name, "wb") as sink:
                        shutil.copyfileobj(source, sink, 1 << 24)
                except KeyError as error:
                    raise RuntimeFetchError(f"{wheels[0].name} has no {member}.", library) from error
        if target.exists():
            shutil.rmtree(target)
        # A rename: a run interrupted mid-extraction never leaves a half-written cache entry.
        staging.rename(target)
    return library
