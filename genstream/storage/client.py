"""S3 access through aiobotocore: clients, buckets and presigned URLs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from genstream.storage.config import S3Settings

S3Client = Any  # aiobotocore's client is generated at run time and has no static type


@asynccontextmanager
async def s3_client(settings: S3Settings, *, for_clients: bool = False) -> AsyncIterator[S3Client]:
    """A client of the store; ``for_clients`` makes one whose presigned URLs name the
    endpoint clients reach (``public_endpoint_url``), for presigning only."""
    session = get_session()
    config = AioConfig(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
    )
    async with session.create_client(
        "s3",
        endpoint_url=settings.signing_endpoint_url if for_clients else settings.endpoint_url,
        region_name=settings.region,
        aws_access_key_id=settings.access_key.get_secret_value(),
        aws_secret_access_key=settings.secret_key.get_secret_value(),
        config=config,
    ) as client:
        yield client


async def ensure_buckets(client: S3Client, buckets: tuple[str, ...]) -> list[str]:
    """Creates the buckets that do not exist yet; returns those created."""
    created = []
    for bucket in buckets:
        try:
            await client.head_bucket(Bucket=bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in {"404", "NoSuchBucket"}:
                raise
            await client.create_bucket(Bucket=bucket)
            created.append(bucket)
    return created


async def presign_get(client: S3Client, *, bucket: str, key: str, ttl_s: int) -> str:
    url: str = await client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=ttl_s
    )
    return url


async def presign_put(
    client: S3Client,
    *,
    bucket: str,
    key: str,
    content_type: str,
    ttl_s: int,
    content_length: int | None = None,
    once: bool = False,
) -> str:
    """A URL that accepts a PUT of ``key`` with exactly this content type, and with exactly
    ``content_length`` bytes when given (both are signed, so the store refuses others).

    ``once`` signs ``If-None-Match: *``: the store then refuses a PUT over an object that
    exists, so the URL can create the object once and never replace it.
    """
    params: dict[str, object] = {"Bucket": bucket, "Key": key, "ContentType": content_type}
    if content_length is not None:
        params["ContentLength"] = content_length
    if once:
        params["IfNoneMatch"] = "*"
    url: str = await client.generate_presigned_url("put_object", Params=params, ExpiresIn=ttl_s)
    return url
