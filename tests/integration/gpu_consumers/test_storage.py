"""The worker's output PUT on the real S3 server: stored as sent, refused when misconfigured,
and carried on over a kept-alive connection the server closed."""

from __future__ import annotations

import threading

import pytest
from pydantic import SecretStr

from genstream.settings import StackSettings
from genstream.storage import S3Client
from gpu_consumers.pipelines.base import TransientError
from gpu_consumers.storage import ObjectStore


async def _fetched(client: S3Client, bucket: str, key: str) -> tuple[bytes, str]:
    got = await client.get_object(Bucket=bucket, Key=key)
    async with got["Body"] as body:
        return await body.read(), got["ContentType"]


async def test_outputs_are_stored_as_sent(stack: StackSettings, s3: tuple[S3Client, str]) -> None:
    client, prefix = s3
    store = ObjectStore(stack.s3)
    payloads = {
        f"{prefix}job_1/output.png": (b"\x89PNG" + bytes(range(256)) * 40, "image/png"),
        f"{prefix}job 2/ä (1)+x.wav": (b"RIFF", "audio/wav"),
        f"{prefix}job_3/empty.bin": (b"", "application/octet-stream"),
    }
    try:
        for key, (data, content_type) in payloads.items():
            store.put_output(key, data, content_type)
    finally:
        store.close()
    for key, expected in payloads.items():
        assert await _fetched(client, stack.s3.outputs_bucket, key) == expected


async def test_a_wrong_secret_is_refused_as_transient(
    stack: StackSettings, s3: tuple[S3Client, str]
) -> None:
    client, prefix = s3
    wrong = stack.s3.model_copy(update={"secret_key": SecretStr("not-the-secret")})
    store = ObjectStore(wrong)
    try:
        with pytest.raises(TransientError, match="403 SignatureDoesNotMatch"):
            store.put_output(f"{prefix}refused.bin", b"x", "application/octet-stream")
    finally:
        store.close()
    listed = await client.list_objects_v2(Bucket=stack.s3.outputs_bucket, Prefix=prefix)
    assert listed.get("KeyCount", 0) == 0


async def test_a_connection_closed_under_it_is_replaced(
    stack: StackSettings, s3: tuple[S3Client, str]
) -> None:
    client, prefix = s3
    store = ObjectStore(stack.s3)
    try:
        store.put_output(f"{prefix}first.bin", b"1", "application/octet-stream")
        kept = store._connections[threading.get_ident()]
        assert kept.sock is not None
        kept.sock.close()  # as when the server drops an idle keep-alive connection
        store.put_output(f"{prefix}second.bin", b"2", "application/octet-stream")
        assert store._connections[threading.get_ident()] is not kept
    finally:
        store.close()
    assert await _fetched(client, stack.s3.outputs_bucket, f"{prefix}second.bin") == (
        b"2",
        "application/octet-stream",
    )
