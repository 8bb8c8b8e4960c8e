"""Where objects live in the store: the one place that names upload and checked-input keys.

Clients write only ``uploads/…`` keys, each through a URL the API signed for that key alone.
``checked/…`` keys are written by the API, never by a client: a checked key holds the very
bytes the API measured and priced, so a worker that reads it runs nothing else.
"""

from __future__ import annotations

__all__ = ["checked_upload_key", "upload_key"]


def upload_key(user_id: str, upload_id: str) -> str:
    """Where a client PUTs an upload, through its presigned URL."""
    return f"uploads/{user_id}/{upload_id}"


def checked_upload_key(user_id: str, upload_id: str) -> str:
    """Where the API keeps the checked copy of an upload, which workers read."""
    return f"checked/{user_id}/{upload_id}"
