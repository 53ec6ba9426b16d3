"""The compatibility matrix: ``python -m tests.compat --workdir build/compat`` (``make compat``).

Fetches (once) the C++ runtime of each TF release into WORKDIR/runtimes, builds the
exports of `tests/compat/_exports.py` with the installed TF, runs every signature of
every export on every runtime through TF's C++ loader (`exporter._compat`), and prints
runtime × export × signature → load / run / max |diff| from the installed TF's outputs.
Exit status 1 when a cell fails, 2 when a runtime cannot be fetched or the installed TF
itself fails on an export; an export that does not build today is reported and skipped
(not a failure of the matrix).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402 - the environment variable must be set before TensorFlow loads
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

#: TF runtimes of the matrix besides the installed one: the first TF Serving release with
#: SignatureDef.defaults (2.14) and the newest patch of every second release after it.
RUNTIMES = ("2.14.1", "2.16.2", "2.18.1", "2.20.0")


def main(argv: list[str] | None = None) -> int:
    """Runs the matrix; returns 0 when every cell passes."""
    parser = argparse.ArgumentParser(prog="python -m tests.compat", allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("build/compat"))
    parser.add_argument("--runtimes", default=",".join(RUNTIMES), help="comma-separated TF versions (default: %(default)s)")
    parser.add_argument("--exports", default=None, help="comma-separated export names (default: all)")
    args = parser.parse_args(argv)

    from exporter._compat import MatrixExport, format_grid, run_matrix
    from exporter._cpp_loader import CppLoaderError
    from exporter._runtimes import installed_version, runtime_library
    from tests.compat import _exports

    start = time.perf_counter()
    try:
        reference = installed_version()
        versions = [v for v in args.runtimes.split(",") if v and v != reference]
        runtimes = {v: runtime_library(v, args.workdir / "runtimes") for v in versions}
        runtimes[reference] = runtime_library(reference, args.workdir / "runtimes")
    except CppLoaderError as error:
        print(f"compat: cannot get the TF runtimes: {error}", file=sys.stderr)
        return 2
    fetched = time.perf_counter()

    names = args.exports.split(",") if args.exports else list(_exports.SPECS)
    exports, skipped = {}, {}
    for name in names:
        built = _exports.build(name, args.workdir)
        if isinstance(built, str):
            skipped[name] = built
        else:
            exports[name] = MatrixExport(*built)
    exported = time.perf_counter()
    try:
        cells = run_matrix(exports, runtimes, reference)
    except CppLoaderError as error:
        print(f"compat: {error}", file=sys.stderr)
        return 2
    done = time.perf_counter()

    print(
        f"Max |difference| from TF {reference}'s outputs, every signature run through each TF runtime's "
        "C++ loader (TF_LoadSessionFromSavedModel), optional inputs omitted and given:\n"
    )
    print(format_grid(cells))
    for name, reason in skipped.items():
        print(f"\n{name}: not exported today ({reason})")
    failed = [c for c in cells if not c.ok]
    print(
        f"\n{len(cells) - len(failed)}/{len(cells)} cells ok. Times: runtimes {fetched - start:.0f} s, "
        f"exports {exported - fetched:.0f} s, matrix {done - exported:.0f} s."
    )
    (args.workdir / "matrix.json").write_text(
        json.dumps(
            {
                "reference": reference,
                "runtimes": {v: str(p) for v, p in runtimes.items()},
                "cells": [c.__dict__ for c in cells],
                "skipped": skipped,
                "seconds": {"runtimes": fetched - start, "exports": exported - fetched, "matrix": done - exported},
            },
            indent=1,
        )
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
