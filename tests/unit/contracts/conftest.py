from __future__ import annotations

from pathlib import Path

import pytest

import contracts

SAMPLES_DIR = Path(contracts.__file__).resolve().parent / "samples" / "v1"


@pytest.fixture(scope="session")
def samples() -> dict[str, bytes]:
    """Stored v1 payloads by wire type: the bytes readers must decode forever."""
    return {path.stem: path.read_bytes() for path in sorted(SAMPLES_DIR.glob("*.json"))}
