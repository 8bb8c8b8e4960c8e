"""Write, or check, the JSON Schema of every wire type under ``contracts/schemas/``.

Each file describes the whole envelope with that type's data, so that a consumer in
any language can validate a record as it sits on the topic. The files are generated
from the models; ``--check`` fails when they have drifted, which is how a change to a
model without a new version gets noticed.

    python -m contracts.schema_export           # regenerate
    python -m contracts.schema_export --check   # exit 1 and list drifted files
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from contracts.envelope import Envelope
from contracts.registry import REGISTRY, Registry

__all__ = ["SCHEMA_DIR", "check", "main", "render_schemas", "schema_for", "write"]

SCHEMA_DIR: Final = Path(__file__).resolve().parent / "schemas"
_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"


def schema_for(wire_type: str, *, registry: Registry = REGISTRY) -> dict[str, Any]:
    """The JSON Schema of an envelope carrying ``wire_type``."""
    model = registry.models[wire_type]
    schema = Envelope[model].model_json_schema()  # type: ignore[valid-type]
    schema["properties"]["type"]["const"] = wire_type
    schema["title"] = wire_type
    return {"$schema": _DIALECT, "$id": f"{wire_type}.json", **schema}


def render_schemas(*, registry: Registry = REGISTRY) -> dict[str, str]:
    """File name → file text, for every wire type in the registry."""
    return {
        f"{wire_type}.json": json.dumps(
            schema_for(wire_type, registry=registry), indent=2, sort_keys=True
        )
        + "\n"
        for wire_type in sorted(registry.models)
    }


def check(directory: Path = SCHEMA_DIR, *, registry: Registry = REGISTRY) -> list[str]:
    """Names of files in ``directory`` that are missing, stale or no longer generated."""
    expected = render_schemas(registry=registry)
    present = {path.name for path in directory.glob("*.json")} if directory.is_dir() else set()
    drifted = [
        name
        for name, text in expected.items()
        if name not in present or (directory / name).read_text(encoding="utf-8") != text
    ]
    return sorted([*drifted, *(present - expected.keys())])


def write(directory: Path = SCHEMA_DIR, *, registry: Registry = REGISTRY) -> list[str]:
    """Regenerate the schema files; returns the names written or removed."""
    changed = check(directory, registry=registry)
    expected = render_schemas(registry=registry)
    directory.mkdir(parents=True, exist_ok=True)
    for name in changed:
        path = directory / name
        if name in expected:
            path.write_text(expected[name], encoding="utf-8")
        else:
            path.unlink()
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m contracts.schema_export",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--check", action="store_true", help="report drift, write nothing")
    parser.add_argument("--dir", type=Path, default=SCHEMA_DIR, help="schema directory")
    args = parser.parse_args(argv)
    if args.check:
        drifted = check(args.dir)
        for name in drifted:
            print(f"drifted: {args.dir / name}", file=sys.stderr)
        return 1 if drifted else 0
    for name in write(args.dir):
        print(f"wrote: {args.dir / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
