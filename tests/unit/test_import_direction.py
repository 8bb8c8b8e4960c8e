"""Dependencies point one way: contracts, then the shared kit, then the producers library,
then the services, then the benchmark. A module may import its own package and those below."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Final

ROOT = Path(__file__).resolve().parents[2]

LAYERS: Final = (
    ("contracts",),
    ("genstream",),
    ("producers",),
    ("api", "stream_processors", "gpu_consumers"),
    ("bench",),
)
"""Lowest first; the services of one layer do not import each other either."""

EXCEPTIONS: Final = {
    ("genstream/cli.py", "api"): "replay rebuild runs the projection's rebuild",
    ("api/jobs/spend.py", "stream_processors"): "a quote counts what admission counts",
}
"""Imports that point the wrong way, each with what it uses, until that moves down."""


def _layer(package: str) -> int | None:
    return next((n for n, names in enumerate(LAYERS) if package in names), None)


def _imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module.split(".")[0]


def _wrong_way() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for names in LAYERS:
        for package in names:
            own = _layer(package)
            for path in sorted((ROOT / package).rglob("*.py")):
                for imported in _imports(path):
                    theirs = _layer(imported)
                    if theirs is None or imported == package:
                        continue
                    if theirs > own or (theirs == own and imported != package):
                        found.add((str(path.relative_to(ROOT)), imported))
    return found


def test_every_import_points_down_the_layers() -> None:
    assert _wrong_way() == set(EXCEPTIONS)


def test_the_layers_name_every_package() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert packages - {"tests"} == {name for names in LAYERS for name in names}
