"""The export-files hash: one SHA-256 over a version directory's files, for re-verification.

The model hash in the report says which Keras model was exported; this one says which
bytes were published, so a later `saliency-export verify` can tell an edited, truncated or
incomplete version from the one that passed verification.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path, PurePath

__all__ = ["ALGORITHM", "export_files", "export_files_sha256"]

#: Recorded beside the digest so a future format change is detectable.
ALGORITHM = "sha256(relpath NUL size NUL bytes, sorted by relpath)"


def export_files(export_dir: Path, exclude: Iterable[str | PurePath] = ()) -> list[str]:
    """Every regular file under `export_dir` as a POSIX relative path, sorted, minus `exclude`."""
    export_dir = Path(export_dir)
    skip = {Path(p).as_posix() for p in exclude}
    files = (p.relative_to(export_dir).as_posix() for p in export_dir.rglob("*") if p.is_file())
    return sorted(f for f in files if f not in skip)


def export_files_sha256(export_dir: Path, exclude: Iterable[str | PurePath] = ()) -> str:
    """SHA-256 over every file of `export_dir` except `exclude`, in sorted relative-path order.

    Each file contributes its relative path, its size and its bytes, so a renamed, added or
    removed file changes the digest as much as an edited one.

    Args:
        export_dir: A version directory.
        exclude: Relative paths left out (the report, which records the digest), e.g. the
            contract's `REPORT_ASSET` (a PurePosixPath).

    Returns:
        The hex digest.
    """
    export_dir = Path(export_dir)
    digest = hashlib.sha256()
    for relative in export_files(export_dir, exclude):
        path = export_dir / relative
        digest.update(relative.encode() + b"\0" + str(path.stat().st_size).encode() + b"\0")
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
