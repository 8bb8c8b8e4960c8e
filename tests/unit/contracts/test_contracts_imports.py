"""``contracts`` is the bottom of the dependency graph: stdlib and pydantic only."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import contracts

PACKAGE_DIR = Path(contracts.__file__).resolve().parent
ALLOWED = {"contracts", "pydantic", "pydantic_core", *sys.stdlib_module_names}


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_contracts_imports_only_stdlib_and_pydantic() -> None:
    modules = sorted(PACKAGE_DIR.glob("*.py"))
    assert modules
    for path in modules:
        assert _imported_roots(path) <= ALLOWED, path.name


def test_public_names_are_exported() -> None:
    assert sorted(contracts.__all__) == sorted(set(contracts.__all__))
    for name in contracts.__all__:
        assert hasattr(contracts, name), name


def test_schema_export_runs_as_a_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "contracts.schema_export", "--check"],
        cwd=PACKAGE_DIR.parent,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
