"""A user in a real browser: signs up, watches an image job come alive (placeholder, preview,
result), cancels a long job, downloads the output; the pages pass an accessibility check at
desktop and phone widths. Screenshots of each step go to ``var/screenshots/``."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from PIL import Image
from playwright.sync_api import Browser, BrowserContext, Page, Request, expect

from tests.browser.pipeline import ROOT, Pipeline
from tests.integration.api.lifecycle import Story, add_job, project

pytestmark = [pytest.mark.integration, pytest.mark.timeout(360)]

PASSWORD = "correct horse battery staple"
AXE = ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"
PNG = b"\x89PNG\r\n\x1a\n"
PHONE = {"width": 390, "height": 844}
JOB_URL = re.compile(r"/jobs/[A-Za-z0-9._:@+-]+$")


class Session:
    """What one test run shares between its steps."""

    def __init__(self) -> None:
        self.email = f"browser-{uuid.uuid4().hex[:10]}@example.com"
        self.image_job = ""
        self.long_job = ""
        self.edit_job = ""
        self.storage: Any = None


@pytest.fixture(scope="module")
def session() -> Session:
    return Session()


@pytest.fixture(scope="module")
def desktop(browser: Browser) -> Iterator[BrowserContext]:
    # The page's own Content-Security-Policy is in force: anything it loads from elsewhere
    # would fail the steps below.
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    yield context
    context.close()


def _shot(page: Page, directory: Path, name: str) -> None:
    page.screenshot(path=str(directory / f"{name}.png"), full_page=True)


def _axe(page: Page) -> list[dict[str, Any]]:
    page.add_script_tag(path=str(AXE))
    # The rules of WCAG 2.1 A and AA, not axe's own best practices.
    rules = "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']"
    result: dict[str, Any] = page.evaluate(
        f"async () => await axe.run(document, {{runOnly: {rules}}})"
    )
    violations: list[dict[str, Any]] = result["violations"]
    return violations


def _fill(page: Page, label: str, value: str) -> None:
    page.get_by_label(label, exact=True).fill(value)


def _submit(page: Page, fields: dict[str, str]) -> str:
    """Fills the playground's form, submits it, and returns the id of the job page it opens."""
    for label, value in fields.items():
        _fill(page, label, value)
    page.get_by_role("button", name="Submit").click()
    expect(page).to_have_url(JOB_URL)
    return page.url.rsplit("/", 1)[1]


def test_a_user_signs_up_and_watches_an_image_job_come_alive(
    pipeline: Pipeline, desktop: BrowserContext, session: Session, screenshots: Path
) -> None:
    page = desktop.new_page()
    page.goto(f"{pipeline.url}/")
    expect(page).to_have_url(re.compile(r"/signin$"))
    page.get_by_role("link", name="Create an account").click()
    _fill(page, "Email", session.email)
    _fill(page, "Password", PASSWORD)
    page.get_by_label("Password", exact=True).press("Enter")
    expect(page.get_by_role("heading", name="Playground")).to_be_visible()
    _shot(page, screenshots, "01-signed-up-playground")
    pipeline.grant(pipeline.user_id(session.email), 1000)

    page.get_by_label("Job type").select_option("image.generate")
    prompt = "a sunlit living room with a green sofa"
    fields = {"Prompt": prompt, "Width": "256", "Height": "256", "Steps": "16", "Seed": "42"}
    session.image_job = _submit(page, fields)
    picture = page.get_by_test_id("picture")
    expect(picture).to_be_visible()
    _shot(page, screenshots, "02-image-job-placeholder")

    # The BlurHash comes with the first preview, and the preview stays in the strip after.
    expect(page.locator("canvas.blurhash[data-blurhash]").first).to_be_attached(timeout=60_000)
    expect(page.get_by_role("img", name=re.compile(r"^Preview at step \d+$")).first).to_be_visible()
    _shot(page, screenshots, "03-image-job-preview")

    expect(page.locator("[data-status]")).to_have_attribute(
        "data-status", "completed", timeout=60_000
    )
    result = page.get_by_role("img", name="The generated image")
    expect(result).to_be_visible()
    expect(result).to_have_class("loaded")
    _shot(page, screenshots, "04-image-job-completed")

    download = page.get_by_role("link", name=re.compile(r"^Download "))
    href = download.get_attribute("href")
    assert href, "no download link"
    answer = page.request.get(href)
    assert answer.ok, answer.status
    assert answer.body().startswith(PNG)
    session.storage = desktop.storage_state()


def test_a_long_job_is_cancelled_from_its_page(
    pipeline: Pipeline, desktop: BrowserContext, session: Session, screenshots: Path
) -> None:
    page = desktop.new_page()
    page.goto(f"{pipeline.url}/playground?type=synthetic")
    expect(page.get_by_label("Job type")).to_have_value("synthetic")
    session.long_job = _submit(page, {"Steps": "600", "Step Ms": "100"})
    status = page.locator("[data-status]")
    expect(status).to_have_attribute("data-status", "running", timeout=30_000)
    step = page.get_by_text(re.compile(r"^Step \d+ of 600"))
    expect(step).to_be_visible()
    # A network drop: the API dies with the stream open; the page reconnects by itself,
    # resumes after the last event id it had, and shows live progress again.
    streams: list[Request] = []
    page.on("request", lambda request: streams.append(request))
    pipeline.restart_api()
    connection = page.locator("[data-connection]")
    expect(connection).to_have_attribute("data-connection", "open", timeout=30_000)
    resumed = [r for r in streams if r.resource_type == "eventsource"]
    assert resumed, "the page opened no stream after the drop"
    resumed_after = resumed[0].all_headers().get("last-event-id", "")
    assert re.fullmatch(r"\d+(\.\d+)?", resumed_after), resumed[0].all_headers()
    before = step.inner_text()
    expect(step).not_to_have_text(before)
    _shot(page, screenshots, "05-long-job-running")
    page.get_by_role("button", name="Cancel job").click()
    expect(page.locator("[data-status]")).to_have_attribute(
        "data-status", "cancelled", timeout=30_000
    )
    _shot(page, screenshots, "06-long-job-cancelled")

    page.goto(f"{pipeline.url}/jobs")
    page.get_by_label("Status").select_option("cancelled")
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(session.long_job)
    page.get_by_label("Status").select_option("")
    expect(rows).to_have_count(2)
    page.get_by_label("Type").select_option("synthetic")
    expect(rows).to_have_count(1)
    _shot(page, screenshots, "07-history")


def test_an_image_edit_sends_its_file_straight_to_storage(
    pipeline: Pipeline, desktop: BrowserContext, session: Session, tmp_path: Path
) -> None:
    picture = tmp_path / "room.png"
    Image.new("RGB", (64, 64), (200, 180, 150)).save(picture)
    page = desktop.new_page()
    puts: list[Request] = []
    page.on("request", lambda request: puts.append(request) if request.method == "PUT" else None)
    page.goto(f"{pipeline.url}/playground?type=image.edit")
    page.get_by_label("Image file", exact=True).set_input_files(picture)
    edit_job = _submit(page, {"Prompt": "a green sofa by the window", "Steps": "2"})
    # The PUT went to the store, not through the API, with the headers the upload was signed with.
    assert len(puts) == 1, puts
    assert urlsplit(puts[0].url).netloc != urlsplit(pipeline.url).netloc
    headers = puts[0].all_headers()
    assert headers["if-none-match"] == "*"
    assert headers["content-type"] == "image/png"
    expect(page.locator("[data-status]")).to_have_attribute(
        "data-status", "completed", timeout=60_000
    )
    session.edit_job = edit_job


def test_the_account_page_shows_credits_and_makes_an_api_key_shown_once(
    pipeline: Pipeline, desktop: BrowserContext, screenshots: Path
) -> None:
    page = desktop.new_page()
    page.goto(f"{pipeline.url}/account")
    # 100 on sign-up stay in the unrelayed outbox; 1000 granted; the image job cost 2 and
    # the edit 3; the cancelled job's hold was released.
    expect(page.get_by_test_id("balance")).to_have_text("995", timeout=30_000)
    expect(page.get_by_test_id("plan")).to_have_text("FREE")
    _fill(page, "Name of a new key", "ci")
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_test_id("new-key")).to_have_text(re.compile(r"^gsk_"))
    _shot(page, screenshots, "08-account-new-key")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke ci").click()
    expect(page.get_by_role("button", name="Revoke ci")).to_have_count(0)


def test_an_operator_opens_the_operator_page(
    pipeline: Pipeline, desktop: BrowserContext, session: Session, screenshots: Path
) -> None:
    page = desktop.new_page()
    page.goto(f"{pipeline.url}/playground")
    # A user is shown no operator page; an admin is, once the role is granted.
    expect(page.get_by_role("heading", name="Playground")).to_be_visible()
    expect(page.get_by_role("link", name="Operator")).to_have_count(0)
    page.close()
    pipeline.make_admin(session.email)
    # A job of the user's that failed, as the projection records it: the page offers a re-run.
    owner = pipeline.user_id(session.email)
    failed = add_job(pipeline.engine, owner)
    story = Story(owner, failed)
    project(pipeline.engine, [story.accepted(), story.queued(), story.started(), story.failed()])
    page = desktop.new_page()
    page.goto(f"{pipeline.url}/playground")
    page.get_by_role("link", name="Operator").click()
    expect(page.get_by_role("heading", name="Operator")).to_be_visible()
    expect(page.get_by_test_id("health")).to_be_visible(timeout=30_000)
    groups = page.get_by_role("table").filter(has_text="Members")
    expect(
        groups.get_by_role("row").filter(has_text=f"projection-{pipeline.unique}")
    ).to_be_visible()
    tiers = page.get_by_role("table").filter(has_text="Oldest wait")
    expect(tiers.get_by_role("row").filter(has_text="image")).to_have_count(3)
    expect(page.get_by_role("img", name="Consumer-group lag over the last hour")).to_be_visible()
    expect(page.locator(".chart canvas").first).to_be_attached()
    expect(page.get_by_role("img", name="Jobs ended a minute over the last hour")).to_be_visible()
    _shot(page, screenshots, "09-operator")
    page.get_by_role("button", name=f"Re-run job {failed}").click()
    expect(page.get_by_test_id("rerun-result")).to_have_text(re.compile(r"^re-run as job_"))
    _shot(page, screenshots, "09b-operator-rerun")


def _weigh(page: Page, url: str) -> tuple[dict[str, int], list[str]]:
    """Bytes transferred to load ``url`` (headers and bodies) by kind of resource: the app
    (document, scripts, styles), the API's answers, and media; and every address asked."""
    requests: list[Request] = []
    page.on("request", lambda request: requests.append(request))
    page.goto(url, wait_until="networkidle")
    expect(page.locator("[data-status]")).to_have_attribute("data-status", re.compile(".+"))
    kinds = {"document": "app", "script": "app", "stylesheet": "app", "image": "media"}
    weight = {"app": 0, "api": 0, "media": 0}
    for request in requests:
        if request.resource_type == "eventsource":
            continue  # open for as long as the page is: not part of loading it
        sizes = request.sizes()
        kind = kinds.get(request.resource_type, "api" if "/v1/" in request.url else "media")
        weight[kind] += sizes["requestHeadersSize"] + sizes["responseHeadersSize"]
        weight[kind] += sizes["responseBodySize"]
    return weight, [request.url for request in requests]


def test_pages_are_accessible_and_fit_a_phone(
    pipeline: Pipeline, browser: Browser, session: Session, screenshots: Path
) -> None:
    assert session.storage is not None, "the sign-up test runs first"
    # Scripts of the check itself are injected into the pages: the CSP would refuse them.
    phone = browser.new_context(viewport=PHONE, storage_state=session.storage, bypass_csp=True)
    phone.set_default_timeout(20_000)
    page = phone.new_page()
    try:
        weight, asked = _weigh(page, f"{pipeline.url}/jobs/{session.image_job}")
        # Nothing from outside the machine: the API's origin and the store's presigned URLs.
        assert {urlsplit(u).hostname for u in asked} == {"127.0.0.1"}, asked
        weight["total"] = sum(weight.values())
        (screenshots / "page-weight.json").write_text(
            json.dumps({"job_page_bytes": weight, "requests": len(asked)}, indent=2)
        )
        assert weight["app"] < 150_000, weight
        started = time.monotonic()
        for path, name in (
            (f"/jobs/{session.image_job}", "10-phone-job"),
            ("/playground", "11-phone-playground"),
            (f"/jobs/{session.long_job}", "12-phone-cancelled-job"),
            ("/jobs", "13-phone-history"),
            ("/account", "14-phone-account"),
            ("/operator", "15-phone-operator"),
        ):
            page.goto(f"{pipeline.url}{path}")
            expect(page.locator("main h1")).to_be_visible()
            page.wait_for_load_state("networkidle")
            wide = page.evaluate("document.documentElement.scrollWidth")
            assert wide <= PHONE["width"], f"{path} is {wide}px wide on a {PHONE['width']}px phone"
            critical = [v for v in _axe(page) if v["impact"] == "critical"]
            assert not critical, f"{path}: {json.dumps(critical, indent=1)[:3000]}"
            _shot(page, screenshots, name)
        # By keyboard: the first Tab reaches the skip link, and Enter moves into the page.
        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
        assert time.monotonic() - started < 60
    finally:
        phone.close()
