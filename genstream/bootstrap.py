"""Prepares a running stack for genstream: topics, database migrations and buckets."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from contracts import ALL_TOPICS, JOBS_REQUESTED
from genstream.db import upgrade
from genstream.kafka import ensure_topics, wait_for_brokers, wait_for_group_coordinator
from genstream.settings import StackSettings
from genstream.storage import ensure_buckets, s3_client


@dataclass(frozen=True, slots=True)
class BootstrapReport:
    brokers: int
    topics_created: list[str]
    topics_total: int
    buckets_created: list[str]


async def _buckets(settings: StackSettings) -> list[str]:
    async with s3_client(settings.s3) as client:
        return await ensure_buckets(client, settings.s3.buckets)


def bootstrap(settings: StackSettings, *, timeout_s: float = 90.0) -> BootstrapReport:
    expected = len(settings.kafka.bootstrap_servers.split(","))
    brokers = wait_for_brokers(settings.kafka, expected=expected, timeout_s=timeout_s)
    created = ensure_topics(settings.kafka, ALL_TOPICS, timeout_s=timeout_s)
    wait_for_group_coordinator(settings.kafka, topic=JOBS_REQUESTED.name, timeout_s=timeout_s)
    upgrade(settings.pg)
    buckets = asyncio.run(_buckets(settings))
    return BootstrapReport(
        brokers=brokers,
        topics_created=created,
        topics_total=len(ALL_TOPICS),
        buckets_created=buckets,
    )
