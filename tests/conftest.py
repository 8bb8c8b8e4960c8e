"""Fixtures shared by every test: names unique to one test, so tests never see each other."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def unique() -> str:
    """A short token for names (topics, schemas, key prefixes) owned by one test."""
    return uuid.uuid4().hex[:12]
