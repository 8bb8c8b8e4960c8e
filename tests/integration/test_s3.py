"""The S3 server for real: put and get, presigned PUT and GET, scope and expiry."""

from __future__ import annotations

import asyncio
import time

import httpx

from genstream.settings import StackSettings
from genstream.storage import S3Client, presign_get, presign_put


async def test_put_then_get(stack: StackSettings, s3: tuple[S3Client, str]) -> None:
    client, prefix = s3
    bucket = stack.s3.outputs_bucket
    await client.put_object(
        Bucket=bucket,
        Key=f"{prefix}a.bin",
        Body=b"\x00\x01payload",
        ContentType="application/octet-stream",
    )
    got = await client.get_object(Bucket=bucket, Key=f"{prefix}a.bin")
    async with got["Body"] as body:
        assert await body.read() == b"\x00\x01payload"
    assert got["ContentType"] == "application/octet-stream"


async def test_presigned_put_then_get(stack: StackSettings, s3: tuple[S3Client, str]) -> None:
    client, prefix = s3
    bucket, key = stack.s3.outputs_bucket, f"{prefix}image.png"
    payload = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    put_url = await presign_put(client, bucket=bucket, key=key, content_type="image/png", ttl_s=60)
    get_url = await presign_get(client, bucket=bucket, key=key, ttl_s=60)
    async with httpx.AsyncClient(timeout=10) as http:
        put = await http.put(put_url, content=payload, headers={"Content-Type": "image/png"})
        assert put.status_code == 200, put.text
        got = await http.get(get_url)
        assert got.status_code == 200
        assert got.content == payload
        assert got.headers["content-type"] == "image/png"


async def test_presigned_urls_are_scoped_to_one_object_and_type(
    stack: StackSettings, s3: tuple[S3Client, str]
) -> None:
    client, prefix = s3
    bucket = stack.s3.outputs_bucket
    put_url = await presign_put(
        client, bucket=bucket, key=f"{prefix}x.png", content_type="image/png", ttl_s=60
    )
    async with httpx.AsyncClient(timeout=10) as http:
        wrong_type = await http.put(put_url, content=b"x", headers={"Content-Type": "text/html"})
        assert wrong_type.status_code == 403
        other_key = await http.put(
            put_url.replace("x.png", "y.png"), content=b"x", headers={"Content-Type": "image/png"}
        )
        assert other_key.status_code == 403
        unsigned = await http.get(f"{stack.s3.endpoint_url}/{bucket}/{prefix}x.png")
        assert unsigned.status_code == 403


async def test_presigned_get_expires(stack: StackSettings, s3: tuple[S3Client, str]) -> None:
    client, prefix = s3
    bucket, key = stack.s3.outputs_bucket, f"{prefix}short.txt"
    await client.put_object(Bucket=bucket, Key=key, Body=b"soon gone")
    # Signing times are whole seconds, so a 3 s lifetime is between 2 and 3 s long.
    url = await presign_get(client, bucket=bucket, key=key, ttl_s=3)
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.get(url)).status_code == 200
        deadline = time.monotonic() + 15
        status = 200
        while status == 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            status = (await http.get(url)).status_code
        assert status == 403
