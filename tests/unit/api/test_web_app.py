"""The web app's files in front of the API: its pages, its assets, and nothing else."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from api.web_app import WebAppMiddleware

CSP = "default-src 'self'"


@pytest.fixture
def client(tmp_path: Path) -> httpx.AsyncClient:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><title>app</title>")
    (tmp_path / "assets" / "index-abc123.js").write_text("console.log(1)")
    (tmp_path / "favicon.svg").write_text("<svg/>")
    (tmp_path.parent / "secret.txt").write_text("not the app's")
    app = FastAPI()

    @app.get("/v1/things")
    async def things() -> dict[str, str]:
        return {"api": "yes"}

    @app.post("/jobs")
    async def post_jobs() -> dict[str, str]:
        return {"posted": "to the API"}

    app.add_middleware(WebAppMiddleware, directory=tmp_path, csp=CSP)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


@pytest.mark.parametrize(
    "path", ["/", "/signin", "/playground", "/jobs", "/jobs/job_1", "/account"]
)
async def test_every_page_of_the_app_is_its_index_never_cached(
    client: httpx.AsyncClient, path: str
) -> None:
    answer = await client.get(path)
    assert answer.status_code == 200
    assert "<title>app</title>" in answer.text
    assert answer.headers["cache-control"] == "no-cache"
    assert answer.headers["content-security-policy"] == CSP
    assert answer.headers["x-content-type-options"] == "nosniff"


async def test_hashed_assets_are_cached_for_good(client: httpx.AsyncClient) -> None:
    answer = await client.get("/assets/index-abc123.js")
    assert answer.status_code == 200
    assert answer.text == "console.log(1)"
    assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"
    icon = await client.get("/favicon.svg")
    assert icon.status_code == 200
    assert "immutable" not in icon.headers.get("cache-control", "")


@pytest.mark.parametrize(
    "path", ["/assets/missing.js", "/assets/../../secret.txt", "/assets/%2e%2e/%2e%2e/secret.txt"]
)
async def test_a_file_the_build_lacks_is_the_api_s_404(
    client: httpx.AsyncClient, path: str
) -> None:
    answer = await client.get(path)
    assert answer.status_code == 404
    assert "not the app's" not in answer.text


async def test_every_other_path_and_method_is_the_api_s(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/things")).json() == {"api": "yes"}
    assert (await client.post("/jobs")).json() == {"posted": "to the API"}
    assert (await client.get("/nothing-here")).status_code == 404
    assert (await client.get("/index.html")).status_code == 404
