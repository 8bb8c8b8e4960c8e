"""Signature Version 4 for one S3 request, checked against botocore's own signer."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from genstream.storage.sigv4 import Credentials, object_path, payload_hash, signed_headers

ACCESS, SECRET, REGION = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "us-east-1"


def _botocore_authorization(url: str, body: bytes, content_type: str) -> tuple[str, str]:
    request = AWSRequest(method="PUT", url=url, data=body, headers={"Content-Type": content_type})
    S3SigV4Auth(BotoCredentials(ACCESS, SECRET), "s3", REGION).add_auth(request)
    return request.headers["Authorization"], request.headers["X-Amz-Date"]


@pytest.mark.parametrize(
    "key",
    [
        "outputs/u1/job_1/output.png",
        "outputs/u 1/job+2/ä name (1).bin",
        "outputs/u1/job_3/a~b_c-d.e",
    ],
)
def test_a_put_is_signed_as_botocore_signs_it(key: str) -> None:
    body, content_type = b"\x89PNG payload", "image/png"
    path = object_path("genstream-outputs", key)
    expected, amz_date = _botocore_authorization(f"http://127.0.0.1:9000{path}", body, content_type)
    headers = signed_headers(
        "PUT",
        host="127.0.0.1:9000",
        path=path,
        headers={"Content-Type": content_type},
        body_hash=payload_hash(body),
        credentials=Credentials(ACCESS, SECRET, REGION),
        now=datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC),
    )
    assert headers["Authorization"] == expected
    assert headers["x-amz-content-sha256"] == payload_hash(body)
    assert headers["Host"] == "127.0.0.1:9000"


def test_paths_escape_what_is_not_unreserved_and_keep_segments() -> None:
    assert object_path("b", "a/b c/d+e~f") == "/b/a/b%20c/d%2Be~f"
    assert object_path("b", "ä") == "/b/%C3%A4"


def test_another_secret_or_time_gives_another_signature() -> None:
    def sign(secret: str, at: datetime) -> str:
        return signed_headers(
            "PUT",
            host="h",
            path="/b/k",
            headers={},
            body_hash=payload_hash(b""),
            credentials=Credentials(ACCESS, secret, REGION),
            now=at,
        )["Authorization"]

    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert sign(SECRET, at) != sign(SECRET + "x", at)
    assert sign(SECRET, at) != sign(SECRET, at.replace(second=6))
    assert "Credential=AKIDEXAMPLE/20260102/us-east-1/s3/aws4_request" in sign(SECRET, at)
