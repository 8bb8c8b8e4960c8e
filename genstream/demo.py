"""A walk through the real stack that a person can watch: one event, one object, one row."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import httpx
from sqlalchemy import text

from contracts import JOBS_REQUESTED, Envelope, JobRequested, JobType, SyntheticInput
from genstream.db import sync_engine
from genstream.kafka import EventConsumer
from genstream.settings import StackSettings
from genstream.storage import presign_get, s3_client
from producers import EventProducer


def _step(title: str, detail: str, started: float) -> None:
    print(f"  [{(time.monotonic() - started) * 1000:7.1f} ms] {title:<28} {detail}")


async def _object_round_trip(settings: StackSettings, key: str, body: bytes) -> tuple[str, int]:
    async with s3_client(settings.s3) as client:
        await client.put_object(
            Bucket=settings.s3.outputs_bucket, Key=key, Body=body, ContentType="text/plain"
        )
        url = await presign_get(client, bucket=settings.s3.outputs_bucket, key=key, ttl_s=300)
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(url)
        response.raise_for_status()
    return url, len(response.content)


def run_demo(settings: StackSettings, *, timeout_s: float) -> int:
    started = time.monotonic()
    user_id, job_id = "demo-user", f"demo-{uuid.uuid4().hex[:12]}"
    spec = JOBS_REQUESTED
    envelope = Envelope.wrap(
        JobRequested(
            job_id=job_id,
            job_type=JobType.SYNTHETIC,
            input=SyntheticInput(kind="synthetic", steps=10, step_ms=50),
            idempotency_key=None,
            webhook_url=None,
            requested_at=datetime.now(UTC),
        ),
        user_id=user_id,
        source="genstream/demo",
    )
    print(f"genstream demo: job {job_id} for {user_id}")

    with EventProducer(settings=settings.kafka) as producer:
        delivery = producer.send_and_wait(spec, envelope, timeout_s=timeout_s)
    _step(
        "produced (acks=all)",
        f"{envelope.type} -> {delivery.topic}[{delivery.partition}]@{delivery.offset}",
        started,
    )

    position = [(delivery.topic, delivery.partition, delivery.offset)]
    with EventConsumer(
        settings=settings.kafka, group_id="genstream-demo", assignments=position
    ) as consumer:
        events = consumer.drain(until=bool, timeout_s=timeout_s)
    if not events or events[0].envelope != envelope:
        print("  the event did not come back from the broker")
        return 1
    _step(
        "consumed and decoded",
        f"{type(events[0].envelope.data).__name__} trace={envelope.trace}",
        started,
    )

    url, size = asyncio.run(
        _object_round_trip(
            settings, f"outputs/{user_id}/{job_id}/hello.txt", b"hello from genstream\n"
        )
    )
    _step("stored and fetched (S3)", f"{size} bytes through a presigned URL", started)

    engine = sync_engine(settings.pg)
    with engine.connect() as connection:
        head = connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    engine.dispose()
    _step("read model (PostgreSQL)", f"migrations at revision {head}", started)
    print(f"  open the output: {url}")
    return 0
