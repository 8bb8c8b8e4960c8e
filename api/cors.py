"""Cross-origin access for the browser clients of app back ends: the origins the settings list
may call the API and open its event streams; every other origin gets no CORS headers at all.

Credentials travel as bearer tokens (``Authorization``, or ``?access_token=`` for
``EventSource``), never as cookies, so responses do not allow credentials.
"""

from __future__ import annotations

from typing import Final

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

__all__ = ["install_cors"]

_METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE")
_REQUEST_HEADERS: Final = ("Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID")
_EXPOSED_HEADERS: Final = ("Retry-After", "Location")
_PREFLIGHT_CACHE_S: Final = 600


def install_cors(app: FastAPI, origins: tuple[str, ...]) -> None:
    """Answers preflights and adds CORS headers for ``origins``; with none, does nothing.

    Installed last, it wraps every other middleware, so refusals (413, 429, problems) carry
    the headers too and the browser shows their bodies to the page that asked.
    """
    if not origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(origins),
        allow_methods=list(_METHODS),
        allow_headers=list(_REQUEST_HEADERS),
        expose_headers=list(_EXPOSED_HEADERS),
        allow_credentials=False,
        max_age=_PREFLIGHT_CACHE_S,
    )
