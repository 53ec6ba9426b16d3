"""Examples live beside the libraries: never imported by them, never shipped in the wheel."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from setuptools import find_namespace_packages

ROOT = Path(__file__).resolve().parents[2]
LIBRARIES = ("exporter", "serving_client", "model_server")


def _imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules


def test_the_libraries_never_import_the_examples_or_the_tests():
    offenders = []
    for library in LIBRARIES:
        for path in sorted((ROOT / library).rglob("*.py")):
            for module in _imported_modules(path):
                if module.split(".")[0] in ("examples", "tests"):
                    offenders.append(f"{path.relative_to(ROOT)} imports {module}")
    assert offenders == []


def test_the_libraries_hold_no_mnist_code():
    # The data set, the demo model, the demo and the load test moved to examples/mnist/.
    for old in ("exporter/mnist.py", "exporter/demo_model.py", "model_server/demo.py", "model_server/loadtest.py"):
        assert not (ROOT / old).exists(), old
    for name in ("data", "model", "demo", "loadtest"):
        assert (ROOT / "examples" / "mnist" / f"{name}.py").is_file(), name


def test_the_wheel_ships_the_libraries_and_not_the_examples():
    # The package list setuptools builds the wheel from: [tool.setuptools.packages.find] of
    # pyproject.toml applied to this tree (setuptools' default for that table is namespace
    # discovery, hence find_namespace_packages).
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    shipped = set(find_namespace_packages(where=str(ROOT), include=find["include"], exclude=find.get("exclude", ())))
    # Honest only if discovery without the filter would find the examples.
    assert {"examples", "examples.mnist"} <= set(find_namespace_packages(where=str(ROOT)))
    assert {f"{library}" for library in LIBRARIES} <= shipped
    assert "exporter.evaluation" in shipped
    assert not [p for p in shipped if p.split(".")[0] in ("examples", "tests")]
