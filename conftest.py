"""What every test shares: TensorFlow's log level, the markers that follow from fixtures, and
the fuzz-case count in the summary. Directory fixtures stay in tests/<dir>/conftest.py."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest


def _served_defaults() -> None:
    """`model_server._tf_env.apply_defaults()`, loaded from its file: importing the package
    `model_server` would import TensorFlow (2 s) before the settings are in place."""
    path = Path(__file__).resolve().parent / "model_server" / "_tf_env.py"
    spec = importlib.util.spec_from_file_location("_served_tf_env", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.apply_defaults()


# Before any test module imports TensorFlow (and inherited by every process a test starts).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The served runtime settings (TF_ENABLE_ONEDNN_OPTS=1 unless set), as `import exporter` and
# the servers apply them: a test module that imports TensorFlow first would otherwise run this
# process's references on other kernels than the server subprocesses they are compared with
# (on an AMD EPYC TF's own policy leaves oneDNN off: IG answers moved 2.5e-6).
_served_defaults()

#: Session fixtures whose use alone says what a test needs (the markers are in pyproject.toml).
#: Tests carry their markers in their files; this keeps a selection such as make test-fast's
#: `-m 'not integration and not e2e'` from starting a server for a test that forgot one.
FIXTURE_NEEDS: dict[str, tuple[str, ...]] = {
    "export_pool": ("integration",),  # tests/server: tiny exports built with TensorFlow
    "labelled_server": ("integration", "e2e"),  # tests/server: the bundled server on them
    "fused_export": ("integration",),  # tests/exporter: a tiny Keras model exported
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        for fixture, markers in FIXTURE_NEEDS.items():
            if fixture in fixtures:
                for marker in markers:
                    if item.get_closest_marker(marker) is None:
                        item.add_marker(marker)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Report how many fuzz cases the property tests tried (issue 5 asks for the number)."""
    total, tests = 0, 0
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) != "call":
                continue
            cases = [v for k, v in getattr(report, "user_properties", ()) if k == "fuzz_cases"]
            if cases:
                total += sum(cases)
                tests += 1
    if tests:
        terminalreporter.write_line(f"fuzz cases tried: {total} in {tests} property tests")
