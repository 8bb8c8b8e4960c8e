from __future__ import annotations

from pathlib import Path

import pytest

import contracts

SAMPLES_DIR = Path(contracts.__file__).resolve().parent / "samples" / "v1"
LEGACY_DIR = Path(contracts.__file__).resolve().parent / "samples" / "legacy"


@pytest.fixture(scope="session")
def samples() -> dict[str, bytes]:
    """Stored v1 payloads by wire type: the bytes readers must decode forever."""
    return {path.stem: path.read_bytes() for path in sorted(SAMPLES_DIR.glob("*.json"))}


@pytest.fixture(scope="session")
def legacy_samples() -> dict[str, bytes]:
    """The same events as stored before their envelope took CloudEvents' attribute names
    (``user_id`` and ``trace`` in the body, ``ce_type`` and ``ce_id`` headers)."""
    return {path.stem: path.read_bytes() for path in sorted(LEGACY_DIR.glob("*.json"))}
