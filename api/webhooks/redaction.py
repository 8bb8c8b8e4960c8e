"""Webhook URLs as logs and the delivery log show them: the query, which often carries a
receiver's token, is never written out."""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

__all__ = ["REDACTED_QUERY", "redacted_url"]

REDACTED_QUERY: Final = "[redacted]"


def redacted_url(url: str) -> str:
    """``scheme://host[:port]/path``, with ``?[redacted]`` where the URL had a query."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host if port is None else f"{host}:{port}"
    query = f"?{REDACTED_QUERY}" if parts.query else ""
    return f"{parts.scheme}://{netloc}{parts.path}{query}"
