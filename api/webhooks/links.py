"""Presigned download URLs in webhook bodies, signed when the delivery is recorded.

A body is fixed once recorded (every attempt sends the same bytes), so its URLs must outlive
the attempts: they last ``download_url_ttl_s`` (a day by default, at most the store's seven).
Only keys under the job's own output prefix are signed, as for the API's reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.session
from botocore.config import Config

from api.jobs.downloads import output_prefix
from genstream.storage import S3Settings

__all__ = ["SignedLinks", "Signer", "s3_signer"]


@dataclass(frozen=True, slots=True)
class SignedLinks:
    urls: Mapping[str, str]
    """By object key."""
    expires_at: datetime | None
    """``None`` when nothing was signed."""


Signer = Callable[[str, str, Iterable[str]], SignedLinks]
"""``(user_id, job_id, keys)`` → the URLs of the keys that are the job's own."""


def s3_signer(settings: S3Settings, *, ttl_s: int) -> Signer:
    """Signs with the store's credentials for the endpoint clients reach; signing is local
    computation, no request to the store."""
    client: Any = botocore.session.get_session().create_client(
        "s3",
        endpoint_url=settings.signing_endpoint_url,
        region_name=settings.region,
        aws_access_key_id=settings.access_key.get_secret_value(),
        aws_secret_access_key=settings.secret_key.get_secret_value(),
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )

    def sign(user_id: str, job_id: str, keys: Iterable[str]) -> SignedLinks:
        prefix = output_prefix(user_id, job_id)
        wanted = sorted({key for key in keys if key.startswith(prefix)})
        if not wanted:
            return SignedLinks({}, None)
        expires_at = datetime.now(UTC) + timedelta(seconds=ttl_s)
        urls = {
            key: client.generate_presigned_url(
                "get_object",
                Params={"Bucket": settings.outputs_bucket, "Key": key},
                ExpiresIn=ttl_s,
            )
            for key in wanted
        }
        return SignedLinks(urls, expires_at)

    return sign
