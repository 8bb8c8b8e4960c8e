"""The web app's files (``web/``'s build), served at ``/`` next to the API on its origin.

Hashed assets are cached for good; ``index.html`` answers the app's own page paths, which the
client routes, and is never cached, so a new build reaches browsers at once. Every other path
is the API's: an unknown one gets the API's 404 problem, not the page. The page may talk to
this origin and the object store (presigned uploads, downloads and previews) and nothing
else: its Content-Security-Policy says so.

The files are served by a middleware in front of the router rather than a mount inside it:
the app's paths and the API's never overlap, and the router keeps only the API's operations,
each with its place in the OpenAPI document.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import anyio.to_thread
from fastapi import FastAPI
from starlette.responses import FileResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from api.settings import ApiSettings

__all__ = ["PAGES", "WEB_DIST", "WebAppMiddleware", "content_security_policy", "mount_web_app"]

WEB_DIST: Final = Path(__file__).resolve().parents[1] / "web" / "dist"
"""Where ``infra/setup.sh web`` (``npm run build``) writes the app."""

PAGES: Final = frozenset({"", "signin", "signup", "playground", "jobs", "account", "operator"})
"""First path segments of the app's pages; ``jobs/<id>`` is a page too."""

_ASSETS: Final = "assets"
_ROOT_FILES: Final = frozenset({"favicon.svg"})
_IMMUTABLE: Final = "public, max-age=31536000, immutable"
_log = logging.getLogger(__name__)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(settings: ApiSettings) -> str:
    """What the page may load and call: this origin, and the store's presigned URLs."""
    store = _origin(settings.s3.signing_endpoint_url)
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src 'self' data: blob: {store}",
            f"media-src 'self' blob: {store}",
            f"connect-src 'self' {store}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


class WebAppMiddleware:
    """Answers GET and HEAD of the app's pages and files; hands everything else on."""

    def __init__(self, app: ASGIApp, *, directory: Path, csp: str) -> None:
        self._app = app
        self._directory = directory.resolve()
        self._page_headers = {
            "Cache-Control": "no-cache",
            "Content-Security-Policy": csp,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self._app(scope, receive, send)
            return
        path = str(scope["path"]).lstrip("/")
        first = path.split("/", 1)[0]
        if first in PAGES:
            response = await self._file("index.html", self._page_headers)
        elif first == _ASSETS or path in _ROOT_FILES:
            headers = {"Cache-Control": _IMMUTABLE} if first == _ASSETS else {}
            response = await self._file(path, {**headers, "X-Content-Type-Options": "nosniff"})
        else:
            response = None
        if response is None:
            # Not the app's: the API answers, with its own 404 problem if nothing matches.
            await self._app(scope, receive, send)
            return
        await response(scope, receive, send)

    async def _file(self, relative: str, headers: dict[str, str]) -> FileResponse | None:
        candidate = (self._directory / relative).resolve()
        if not candidate.is_relative_to(self._directory):
            return None
        try:
            found = await anyio.to_thread.run_sync(os.stat, candidate)
        except (OSError, ValueError):
            return None
        if not stat.S_ISREG(found.st_mode):
            return None
        return FileResponse(candidate, stat_result=found, headers=headers)


def mount_web_app(app: FastAPI, settings: ApiSettings, *, directory: Path = WEB_DIST) -> bool:
    """Serves the built app at ``/``; False (and ``/`` stays 404) when it is not built."""
    if not (directory / "index.html").is_file():
        _log.warning(
            "the web app is not built; / answers 404 (infra/setup.sh web builds it)",
            extra={"directory": str(directory)},
        )
        return False
    app.add_middleware(WebAppMiddleware, directory=directory, csp=content_security_policy(settings))
    return True
