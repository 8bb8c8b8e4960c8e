"""Browser tests: Debian's Chromium driven by Playwright against the whole pipeline."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from genstream.settings import StackSettings
from tests.browser.pipeline import ROOT, Pipeline

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps calling Google's hosts, which a
# closed network refuses many times a start; nothing the tests look at needs them.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "var" / "screenshots"


@pytest.fixture(scope="module")
def pipeline() -> Iterator[Pipeline]:
    if not (ROOT / "var" / "stack.env").exists():
        pytest.fail("the stack is not running: start it with `make infra-up` (make test does)")
    if not (ROOT / "web" / "dist" / "index.html").exists():
        pytest.fail("the web app is not built: infra/setup.sh web (make test does)")
    unique = uuid.uuid4().hex[:12]
    with tempfile.TemporaryDirectory(prefix="genstream-browser-") as run_dir:
        started = Pipeline(StackSettings(), unique, Path(run_dir))
        try:
            started.start()
            yield started
        finally:
            started.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: infra/setup.sh chromium (make test does)")
    with sync_playwright() as playwright:
        # Playwright starts it on a new, empty profile of its own, removed when it closes.
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
