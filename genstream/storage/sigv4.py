"""AWS Signature Version 4 for one S3 request, path-style, with a signed payload hash.

The worker stores a job's outputs with one PUT each. botocore spends about 2 ms of
interpreter time a call on its event hooks, parameter checks and serializers, more than the
PUT of a small output costs the object store itself; signing one request needs only the
hashes below. Presigned URLs and every other call stay with botocore.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

__all__ = ["Credentials", "object_path", "payload_hash", "signed_headers"]

_ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key: str
    secret_key: str
    region: str
    service: str = "s3"


def object_path(bucket: str, key: str) -> str:
    """The path-style request path of an object, encoded as S3 signs it (RFC 3986
    unreserved characters kept, ``/`` kept between segments, everything else escaped)."""
    return f"/{quote(bucket, safe='')}/{quote(key, safe='/')}"


def payload_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@functools.lru_cache(maxsize=8)
def _signing_key(secret_key: str, day: str, region: str, service: str) -> bytes:
    key = hmac.digest(f"AWS4{secret_key}".encode(), day.encode(), "sha256")
    for part in (region, service, "aws4_request"):
        key = hmac.digest(key, part.encode(), "sha256")
    return key


def signed_headers(
    method: str,
    *,
    host: str,
    path: str,
    headers: Mapping[str, str],
    body_hash: str,
    credentials: Credentials,
    now: datetime | None = None,
) -> dict[str, str]:
    """``headers`` with ``Host``, ``x-amz-date``, ``x-amz-content-sha256`` and the
    ``Authorization`` that signs all of them; the request has no query string."""
    at = (now or datetime.now(UTC)).astimezone(UTC)
    amz_date = at.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    sent = {**headers, "Host": host, "x-amz-date": amz_date, "x-amz-content-sha256": body_hash}
    canonical = {name.lower(): " ".join(value.split()) for name, value in sent.items()}
    names = sorted(canonical)
    signed = ";".join(names)
    request = "\n".join(
        [
            method,
            path,
            "",
            "".join(f"{name}:{canonical[name]}\n" for name in names),
            signed,
            body_hash,
        ]
    )
    scope = f"{day}/{credentials.region}/{credentials.service}/aws4_request"
    to_sign = "\n".join([_ALGORITHM, amz_date, scope, hashlib.sha256(request.encode()).hexdigest()])
    key = _signing_key(credentials.secret_key, day, credentials.region, credentials.service)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    sent["Authorization"] = (
        f"{_ALGORITHM} Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    return sent
