"""Presigned download URLs for a job's outputs and previews, only ever for its own files."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from api.settings import ApiSettings
from genstream.storage import presign_get, s3_client

__all__ = ["DownloadUrls", "output_prefix", "sign_downloads"]


def output_prefix(user_id: str, job_id: str) -> str:
    """Where workers store a job's files (``gpu_consumers.storage.output_key``)."""
    return f"outputs/{user_id}/{job_id}/"


@dataclass(frozen=True, slots=True)
class DownloadUrls:
    urls: Mapping[str, str]
    """By object key."""
    expires_at: datetime | None
    """``None`` when nothing was signed."""


async def sign_downloads(
    settings: ApiSettings, *, user_id: str, job_id: str, keys: Iterable[str]
) -> DownloadUrls:
    """GET URLs for the keys under the job's own output prefix.

    The keys come from events that workers wrote; one that points elsewhere (a bug, or a
    worker that should not be trusted with it) gets no URL rather than a way into another
    user's files.
    """
    prefix = output_prefix(user_id, job_id)
    wanted = sorted({key for key in keys if key.startswith(prefix)})
    if not wanted:
        return DownloadUrls({}, None)
    ttl_s = settings.reads.download_url_ttl_s
    # Taken before signing, so a URL never outlives the time the client is told.
    expires_at = datetime.now(UTC) + timedelta(seconds=ttl_s)
    bucket = settings.s3.outputs_bucket
    async with s3_client(settings.s3, for_clients=True) as client:
        urls = {
            key: await presign_get(client, bucket=bucket, key=key, ttl_s=ttl_s) for key in wanted
        }
    return DownloadUrls(urls, expires_at)
