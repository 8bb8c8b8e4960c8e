"""One snapshot that answers "is it healthy": services, tiers, groups, dead letters, credits.

``collect_status`` asks the brokers, the read model and each service's metrics endpoint, and
returns a typed ``StatusSnapshot``; ``genstream status`` prints it and ``GET /v1/admin/status``
serves it as JSON. The shape is a contract of its own: fields are added, never renamed.
Consumer-group lag is measured the way Kafka's ``kafka-consumer-groups --describe`` does:
the log end offset minus the group's committed offset, for each partition it committed.
"""

from __future__ import annotations

import urllib.request
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, func, select

from contracts import DEADLETTER, TIER_TOPICS, WORKLOADS, JobStatus, Workload, worker_group
from contracts.catalog import Catalog
from contracts.enums import Plan
from genstream.db.models import CreditBalance, Job
from genstream.kafka import KafkaSettings
from genstream.kafka.offsets import EARLIEST, LATEST, committed_offsets, partition_offsets
from genstream.kafka.parked import dead_letter_reason, read_parked

__all__ = [
    "DEFAULT_SERVICES",
    "DeadLetterCount",
    "FinishedMinute",
    "GroupState",
    "KafkaFacts",
    "PartitionLag",
    "ReadModelFacts",
    "RecentFailure",
    "ServiceState",
    "StatusScope",
    "StatusSnapshot",
    "TierState",
    "WorkerActivity",
    "collect_status",
    "dead_letter_end",
    "dead_letter_reason",
    "probe_services",
    "read_kafka",
    "read_model_facts",
    "snapshot",
    "tier_ttls",
]

_DEAD_LETTER_WINDOW: Final = timedelta(hours=1)
_DEAD_LETTERS_READ_AT_MOST: Final = 20_000
_FINISHED_WINDOW: Final = timedelta(hours=1)
_RUNNING_READ_AT_MOST: Final = 2_000
_JOBS_SHOWN_PER_WORKER: Final = 5


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServiceState(_Model):
    name: str
    up: bool
    url: str
    detail: str = ""


class TierState(_Model):
    workload: str
    tier: str
    topic: str
    depth: int
    """Records on the tier topic that the workload's group has not taken yet."""
    oldest_wait_s: float | None
    """How long the oldest job the read model has as queued in this tier has waited."""
    queue_ttl_s: int | None
    """The tier's plan's queue lifetime: a job waiting longer expires."""


class PartitionLag(_Model):
    topic: str
    partition: int
    committed: int
    log_end: int
    lag: int


class GroupState(_Model):
    group: str
    state: str
    """The coordinator's word: ``STABLE``, ``EMPTY``, ``DEAD``, ``UNKNOWN`` (no answer), …"""
    members: int
    lag: int
    partitions: list[PartitionLag]


class DeadLetterCount(_Model):
    reason: str
    topic: str
    """The topic the parked record came from."""
    count: int


class RecentFailure(_Model):
    job_id: str
    type: str
    tier: str | None
    error_code: str | None
    error: str | None
    finished_at: datetime | None


class FinishedMinute(_Model):
    """Jobs that ended within one minute, by how."""

    minute: datetime
    completed: int
    failed: int
    other: int
    """Cancelled, expired or rejected."""


class WorkerActivity(_Model):
    """A worker the read model has running jobs for, and what it runs."""

    worker_id: str
    running: int
    job_types: list[str]
    job_ids: list[str]
    """The first few of its running jobs, longest running first."""
    oldest_started_at: datetime | None


class StatusSnapshot(_Model):
    taken_at: datetime
    healthy: bool
    problems: list[str]
    """Why ``healthy`` is false, one line each; empty when it is true."""
    services: list[ServiceState]
    tiers: list[TierState]
    groups: list[GroupState]
    dead_letters_last_hour: list[DeadLetterCount]
    recent_failures: list[RecentFailure]
    reserved_credits: int
    """Credits held for jobs that have not ended, over every account (the read model's sum)."""
    accounts_with_reservations: int
    finished_last_hour: list[FinishedMinute] = []
    """Throughput and failures: the jobs that ended in each minute of the last hour that had
    any, oldest first."""
    workers: list[WorkerActivity] = []
    """Each worker with running jobs, busiest first."""


class KafkaFacts(_Model):
    groups: list[GroupState]
    tier_depths: dict[str, int]
    """By tier topic name (prefixed as in use)."""
    dead_letters: list[DeadLetterCount]


class ReadModelFacts(_Model):
    oldest_queued: dict[str, datetime]
    """``workload/tier`` → when its oldest job still queued joined the queue."""
    recent_failures: list[RecentFailure]
    reserved_credits: int
    accounts_with_reservations: int
    finished_last_hour: list[FinishedMinute] = []
    workers: list[WorkerActivity] = []


DEFAULT_SERVICES: Final[Mapping[str, str]] = {
    "api": "http://127.0.0.1:8000/healthz",
    "outbox-relay": "http://127.0.0.1:9401/metrics",
    "projection": "http://127.0.0.1:9402/metrics",
    "processors": "http://127.0.0.1:9403/metrics",
    "webhooks": "http://127.0.0.1:9404/metrics",
    "retry-relay": "http://127.0.0.1:9405/metrics",
    "worker-image": "http://127.0.0.1:9406/metrics",
    "worker-video": "http://127.0.0.1:9407/metrics",
    "worker-audio": "http://127.0.0.1:9408/metrics",
    "worker-synthetic": "http://127.0.0.1:9409/metrics",
}
"""Each service of the local stack and the address that answers while it is up (the ports
``infra/services.sh`` gives them)."""


class StatusScope(_Model):
    """What the snapshot looks at: topics (under a prefix), groups and service addresses."""

    topic_prefix: str = ""
    processors_group: str = "genstream-processors"
    groups: tuple[str, ...] = (
        "genstream-processors",
        "genstream-projection",
        "genstream-webhooks",
        "genstream-retry-relay",
        *(worker_group(workload) for workload in Workload),
    )
    services: dict[str, str] = dict(DEFAULT_SERVICES)
    failures_shown: int = 10
    probe_timeout_s: float = 1.0
    kafka_timeout_s: float = 5.0


def probe_services(services: Mapping[str, str], *, timeout_s: float) -> list[ServiceState]:
    """Each service is up when its address answers 2xx within ``timeout_s``; asked together."""

    def probe(item: tuple[str, str]) -> ServiceState:
        name, url = item
        if not url.startswith(("http://", "https://")):
            return ServiceState(name=name, up=False, url=url, detail="not an http(s) address")
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as answer:  # noqa: S310 - checked
                status = int(answer.status)
        except OSError as error:  # refused, timed out, or an HTTP error status
            reason = getattr(error, "reason", None) or error  # urllib wraps the socket's error
            return ServiceState(name=name, up=False, url=url, detail=str(reason)[:200])
        return ServiceState(name=name, up=200 <= status < 300, url=url, detail=f"HTTP {status}")

    if not services:
        return []
    with ThreadPoolExecutor(max_workers=min(16, len(services))) as pool:
        return list(pool.map(probe, services.items()))


def read_kafka(
    settings: KafkaSettings,
    scope: StatusScope,
    *,
    now: datetime | None = None,
    dead_letters: bool = True,
) -> KafkaFacts:
    """Groups (state, members, lag), tier depths and, with ``dead_letters``, the last hour's
    dead letters by reason."""
    admin = AdminClient(settings.librdkafka("status"))
    timeout_s = scope.kafka_timeout_s
    groups = _group_states(admin, scope.groups, timeout_s)
    tiers = [spec.prefixed(scope.topic_prefix) for spec in TIER_TOPICS.values()]
    partitions = [TopicPartition(spec.name, p) for spec in tiers for p in range(spec.partitions)]
    ends = partition_offsets(admin, partitions, LATEST, timeout_s)
    starts = partition_offsets(admin, partitions, EARLIEST, timeout_s)
    depths: dict[str, int] = {}
    for workload in Workload:
        own = [
            tp for tp in partitions if tp.topic.startswith(f"{scope.topic_prefix}jobs.{workload}.")
        ]
        committed = committed_offsets(admin, worker_group(workload), own, timeout_s) or {}
        for tp in own:
            key = (tp.topic, tp.partition)
            if key not in ends or key not in starts:
                continue
            position = max(committed.get(key, -1), starts[key])
            depths[tp.topic] = depths.get(tp.topic, 0) + max(0, ends[key] - position)
    dead = (
        _dead_letters(settings, DEADLETTER.prefixed(scope.topic_prefix).name, now, timeout_s)
        if dead_letters
        else []
    )
    return KafkaFacts(groups=groups, tier_depths=depths, dead_letters=dead)


def _group_states(admin: AdminClient, groups: Sequence[str], timeout_s: float) -> list[GroupState]:
    described: dict[str, tuple[str, int]] = {}
    try:
        futures = admin.describe_consumer_groups(list(groups), request_timeout=timeout_s)
        for group, future in futures.items():
            try:
                found = future.result()
            except KafkaException:
                continue
            state = getattr(found.state, "name", str(found.state))
            described[group] = (str(state), len(found.members))
    except KafkaException:
        pass
    states = []
    for group in groups:
        state, members = described.get(group, ("UNKNOWN", 0))
        lags = _group_lag(admin, group, timeout_s)
        states.append(
            GroupState(
                group=group,
                state=state,
                members=members,
                lag=sum(lag.lag for lag in lags),
                partitions=lags,
            )
        )
    return states


def _group_lag(admin: AdminClient, group: str, timeout_s: float) -> list[PartitionLag]:
    committed = committed_offsets(admin, group, None, timeout_s)
    if not committed:
        return []
    ends = partition_offsets(admin, [TopicPartition(t, p) for t, p in committed], LATEST, timeout_s)
    return [
        PartitionLag(
            topic=topic,
            partition=partition,
            committed=offset,
            log_end=ends[(topic, partition)],
            lag=max(0, ends[(topic, partition)] - offset),
        )
        for (topic, partition), offset in sorted(committed.items())
        if (topic, partition) in ends
    ]


def _dead_letters(
    settings: KafkaSettings, topic: str, now: datetime | None, timeout_s: float
) -> list[DeadLetterCount]:
    """Records parked in the last hour, by reason and source topic, read with no group."""
    now = now or datetime.now(UTC)
    counts: Counter[tuple[str, str]] = Counter()
    try:
        parked = read_parked(
            settings,
            topic,
            since=now - _DEAD_LETTER_WINDOW,
            timeout_s=timeout_s,
            at_most=_DEAD_LETTERS_READ_AT_MOST,
        )
        for record in parked:
            counts[(record.reason, record.origin)] += 1
    except (KafkaException, TimeoutError):
        pass
    return [
        DeadLetterCount(reason=reason, topic=source, count=count)
        for (reason, source), count in sorted(counts.items(), key=lambda item: -item[1])
    ]


def read_model_facts(
    connection: Connection,
    *,
    failures_shown: int = 10,
    now: datetime | None = None,
    activity: bool = True,
) -> ReadModelFacts:
    """What the read model says: queued jobs' oldest waits, the last failures, held credits
    and, with ``activity``, the last hour's ends by minute and what each worker runs.

    A plain ``Connection``: the API passes its async engine's through ``run_sync``.
    """
    oldest: dict[str, datetime] = {}
    queued = connection.execute(
        select(Job.type, Job.tier, func.min(Job.queued_at))
        .where(Job.status == JobStatus.QUEUED.value, Job.queued_at.is_not(None))
        .group_by(Job.type, Job.tier)
    )
    for job_type, tier, since in queued:
        workload = WORKLOADS.get(job_type)  # type: ignore[call-overload]
        if workload is None or tier is None or since is None:
            continue
        key = f"{workload.value}/{tier}"
        oldest[key] = min(since, oldest.get(key, since))
    failures = connection.execute(
        select(Job.id, Job.type, Job.tier, Job.error_code, Job.error, Job.finished_at)
        .where(Job.status == JobStatus.FAILED.value)
        .order_by(Job.finished_at.desc().nulls_last())
        .limit(failures_shown)
    )
    reserved, holders = connection.execute(
        select(
            func.coalesce(func.sum(CreditBalance.reserved), 0),
            func.count().filter(CreditBalance.reserved > 0),
        )
    ).one()
    return ReadModelFacts(
        oldest_queued=oldest,
        recent_failures=[
            RecentFailure(
                job_id=job_id,
                type=job_type,
                tier=tier,
                error_code=code,
                error=(error or "")[:300] or None,
                finished_at=finished,
            )
            for job_id, job_type, tier, code, error, finished in failures
        ],
        reserved_credits=int(reserved),
        accounts_with_reservations=int(holders),
        finished_last_hour=_finished_by_minute(connection, now or datetime.now(UTC))
        if activity
        else [],
        workers=_workers(connection) if activity else [],
    )


def _finished_by_minute(connection: Connection, now: datetime) -> list[FinishedMinute]:
    minute = func.date_trunc("minute", Job.finished_at)
    counted = connection.execute(
        select(minute, Job.status, func.count())
        .where(Job.finished_at >= now - _FINISHED_WINDOW)
        .group_by(minute, Job.status)
    )
    by_minute: dict[datetime, dict[str, int]] = {}
    for at, status, count in counted:
        how = status if status in (JobStatus.COMPLETED.value, JobStatus.FAILED.value) else "other"
        slot = by_minute.setdefault(at, {"completed": 0, "failed": 0, "other": 0})
        slot[how] += int(count)
    return [
        FinishedMinute(minute=at.astimezone(UTC), **counts)
        for at, counts in sorted(by_minute.items())
    ]


def _workers(connection: Connection) -> list[WorkerActivity]:
    running = connection.execute(
        select(Job.worker_id, Job.type, Job.id, Job.started_at)
        .where(Job.status == JobStatus.RUNNING.value, Job.worker_id.is_not(None))
        .order_by(Job.started_at.asc().nulls_last())
        .limit(_RUNNING_READ_AT_MOST)
    )
    found: dict[str, dict[str, Any]] = {}
    for worker_id, job_type, job_id, started in running:
        if worker_id is None:
            continue
        seen = found.setdefault(
            worker_id, {"running": 0, "job_types": [], "job_ids": [], "oldest_started_at": started}
        )
        seen["running"] += 1
        if job_type not in seen["job_types"]:
            seen["job_types"].append(job_type)
        if len(seen["job_ids"]) < _JOBS_SHOWN_PER_WORKER:
            seen["job_ids"].append(job_id)
    workers = [WorkerActivity(worker_id=worker, **facts) for worker, facts in found.items()]
    return sorted(workers, key=lambda worker: (-worker.running, worker.worker_id))


def dead_letter_end(settings: KafkaSettings, scope: StatusScope) -> int | None:
    """The dead-letter topic's end offsets summed: how many records were ever parked."""
    admin = AdminClient(settings.librdkafka("status"))
    topic = DEADLETTER.prefixed(scope.topic_prefix)
    partitions = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
    ends = partition_offsets(admin, partitions, LATEST, scope.kafka_timeout_s)
    return sum(ends.values()) if ends else None


def tier_ttls(catalog: Catalog | None) -> dict[str, int | None]:
    """Each tier's queue lifetime, from the plan that dispatches into it."""
    ttls: dict[str, int | None] = {}
    if catalog is None:
        return ttls
    for plan in Plan:
        limits = catalog.limits(plan)
        ttls.setdefault(str(limits.tier), limits.queue_ttl_s)
    return ttls


def snapshot(
    *,
    scope: StatusScope,
    services: Iterable[ServiceState],
    kafka: KafkaFacts,
    read_model: ReadModelFacts,
    catalog: Catalog | None = None,
    now: datetime | None = None,
) -> StatusSnapshot:
    """Puts the facts together and says what is wrong; pure, so tests give it any facts."""
    now = now or datetime.now(UTC)
    ttls = tier_ttls(catalog)
    services = list(services)
    problems = [
        f"{service.name} is down ({service.detail})" for service in services if not service.up
    ]
    tiers = []
    for (workload, tier), spec in TIER_TOPICS.items():
        topic = f"{scope.topic_prefix}{spec.name}"
        since = read_model.oldest_queued.get(f"{workload.value}/{tier.value}")
        wait = max(0.0, (now - since).total_seconds()) if since is not None else None
        ttl = ttls.get(tier.value)
        tiers.append(
            TierState(
                workload=workload.value,
                tier=tier.value,
                topic=topic,
                depth=kafka.tier_depths.get(topic, 0),
                oldest_wait_s=wait,
                queue_ttl_s=ttl,
            )
        )
        if wait is not None and ttl is not None and wait > ttl:
            problems.append(f"{workload.value}/{tier.value}: a job has waited past its TTL")
    for group in kafka.groups:
        if group.members == 0 and group.group.startswith("genstream-workers-"):
            problems.append(f"{group.group} has no members")
    return StatusSnapshot(
        taken_at=now,
        healthy=not problems,
        problems=problems,
        services=services,
        tiers=tiers,
        groups=kafka.groups,
        dead_letters_last_hour=kafka.dead_letters,
        recent_failures=read_model.recent_failures,
        reserved_credits=read_model.reserved_credits,
        accounts_with_reservations=read_model.accounts_with_reservations,
        finished_last_hour=read_model.finished_last_hour,
        workers=read_model.workers,
    )


def collect_status(
    *,
    kafka: KafkaSettings,
    connection: Connection,
    scope: StatusScope | None = None,
    catalog: Catalog | None = None,
) -> StatusSnapshot:
    """The whole snapshot, blocking: for the command line (the API gathers the parts itself)."""
    scope = scope or StatusScope()
    with ThreadPoolExecutor(max_workers=2) as pool:
        probed = pool.submit(probe_services, scope.services, timeout_s=scope.probe_timeout_s)
        brokers = pool.submit(read_kafka, kafka, scope)
        facts = read_model_facts(connection, failures_shown=scope.failures_shown)
        return snapshot(
            scope=scope,
            services=probed.result(),
            kafka=brokers.result(),
            read_model=facts,
            catalog=catalog,
        )
