"""Writing a version directory atomically: stage in a hidden sibling, then rename.

TF Serving only loads integer-named subdirectories of a model's base path, so a
`.tmp-export-…` sibling is invisible to it while it is written and verified. The final
`rename` is atomic on one filesystem, so a server sees either nothing or the whole export.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from exporter._errors import ExportError, VersionExistsError

__all__ = ["STAGING_PREFIX", "existing_versions", "next_version", "staged_version"]

STAGING_PREFIX = ".tmp-export-"


def existing_versions(base_dir: Path) -> list[int]:
    """Integer version directories under `base_dir`, ascending."""
    if not base_dir.is_dir():
        return []
    return sorted(int(p.name) for p in base_dir.iterdir() if p.name.isdigit() and p.is_dir())


def next_version(base_dir: Path) -> int:
    """The next free version: one past the highest existing, starting at 1."""
    versions = existing_versions(base_dir)
    return versions[-1] + 1 if versions else 1


@contextlib.contextmanager
def staged_version(base_dir: Path, version: int) -> Iterator[Path]:
    """Yields a fresh staging directory; on clean exit it becomes `base_dir/<version>`.

    On any exception the staging directory is removed and nothing is published.

    Args:
        base_dir: The model's base path (created if missing).
        version: A positive integer.

    Raises:
        VersionExistsError: If `base_dir/<version>` exists (checked before and after
            staging, since another exporter may have published meanwhile).
    """
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ExportError(f"Version must be a positive integer; received {version!r}.")
    base_dir = Path(base_dir)
    final = base_dir / str(version)
    if final.exists():
        raise VersionExistsError(
            f"Version directory {final} already exists; exports never overwrite. "
            f"Choose another --version (next free: {next_version(base_dir)})."
        )
    base_dir.mkdir(parents=True, exist_ok=True)
    staging = base_dir / f"{STAGING_PREFIX}{version}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        yield staging
        if final.exists():
            raise VersionExistsError(
                f"Version directory {final} appeared while exporting; not overwriting it."
            )
        _fsync_tree(staging)
        os.rename(staging, final)
        _fsync_dir(base_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    # Flush file contents before the rename publishes them, so a crash cannot leave a
    # published version with empty files.
    for directory, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(directory, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(directory))
