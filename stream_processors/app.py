"""The Faust application: accounts kept per user, lifecycle outcomes re-keyed by user.

Two agents:

- ``outcomes`` reads ``jobs.lifecycle`` (keyed by job) and forwards what happened to running
  jobs to ``jobs.outcomes`` keyed by user, so the user's partition sees it;
- ``accounts`` reads the user-keyed, co-partitioned topics (commands, ledger, plans,
  outcomes), applies each event to the user's ``Account`` in a changelog-backed table and
  writes the events that causes.

The guarantee is ``at_least_once`` with idempotent effects: an input seen again after a crash
changes no state and writes the events it caused once more, with the same ids (one per kind
of event and job), which readers drop. An input is acknowledged, and so committed, only once
the brokers hold everything it caused (``stream_processors.acks``). Faust's ``exactly_once``
(Kafka transactions) can be chosen, but against this broker its output did not become visible
to read-committed readers reliably, so it is not the default.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import Any

import faust
from confluent_kafka.admin import AdminClient
from faust.types import EventT
from opentelemetry.trace import INVALID_SPAN, Span

from contracts import (
    REGISTRY,
    Catalog,
    ContractError,
    CreditsReleased,
    CreditsReserved,
    CreditsSettled,
    Envelope,
    Event,
    JobAccepted,
    JobCancelled,
    JobCancelRequested,
    JobCompleted,
    JobExpired,
    JobFailed,
    JobQueued,
    JobRejected,
    JobRequested,
    JobStarted,
    child_traceparent,
    decode,
    derived_event_id,
    encode,
    kafka_headers,
    load_catalog,
    partition_key,
)
from contracts.codec import header_type
from contracts.topics import USER_PARTITIONS
from genstream.kafka.deadletter import parked_headers
from genstream.kafka.records import normalize_headers
from genstream.tracing import event_trace, span_from, tracer
from stream_processors import faust_recovery, metrics
from stream_processors.account_table import AccountTable
from stream_processors.accounts import Account, CreditsOwedError, apply, overdue
from stream_processors.acks import Acknowledger
from stream_processors.credit_wait import CreditWait
from stream_processors.depth import tier_depths
from stream_processors.outputs import DirectOutputs, FaustOutputs, Outputs, raw_topic
from stream_processors.settings import ProcessorSettings
from stream_processors.topology import Topology

SOURCE = "genstream/processors"
_OUTCOME_TYPES = (JobStarted, JobCompleted, JobFailed, JobCancelled, JobExpired)
_NOT_OUTCOMES: frozenset[str] = frozenset(REGISTRY.models) - {
    model.wire_type() for model in _OUTCOME_TYPES
}
"""Lifecycle records the outcome agent passes over by their type header alone: most of the
lifecycle (acceptances, queueing, previews) says nothing to an account. A record without a
known type is still decoded, so that one that is not an event is parked."""

_DECIDED = (JobRequested, JobCancelRequested, *_OUTCOME_TYPES)

_OWN_LEDGER: frozenset[str] = frozenset(
    model.wire_type() for model in (CreditsReserved, CreditsSettled, CreditsReleased)
)
"""Ledger records only the processors write, the effects of decisions already in the accounts
table: the account agent passes over them by their type header, undecoded. (Grants and
purchases, written by others, are read.)"""

_log = logging.getLogger(__name__)

RawHeaders = list[tuple[str, bytes]]


def caused_event_id(data: Event) -> str:
    """The id of an event the processors write: one per kind of event and job.

    Every event the processors write is the only one of its kind for its job (one
    acceptance, one reservation, one settlement or release, ...), so an id made of both is
    the same each time the event is written again after a crash, and readers keep one.
    """
    return derived_event_id(data)


def _headers(event: EventT[Any]) -> RawHeaders:
    return normalize_headers(event.message.headers)


def build_app(settings: ProcessorSettings, *, catalog: Catalog | None = None) -> faust.App:
    faust_recovery.install()
    topology = Topology(prefix=settings.processors_topic_prefix)
    datadir = settings.processors_data_dir / settings.processors_app_id
    datadir.mkdir(parents=True, exist_ok=True)
    prices = catalog or load_catalog(settings.catalog)
    app = faust.App(
        settings.processors_app_id,
        **settings.kafka.faust_options(),
        processing_guarantee=settings.processors_guarantee,
        topic_partitions=USER_PARTITIONS,
        topic_replication_factor=settings.kafka.replication_factor,
        store="memory://",
        datadir=str(datadir),
        web_enabled=False,
        broker_client_id=f"{settings.kafka.client_id}-processors",
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        broker_commit_every=100,
        # A crashed worker's partitions move to the others after this, not Faust's 60 s.
        broker_session_timeout=settings.processors_session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.processors_session_timeout_s / 4),
        broker_commit_interval=0.5,
    )

    sink: Outputs = (
        FaustOutputs(app)
        if settings.processors_guarantee == "exactly_once"
        else DirectOutputs(settings.kafka, linger_ms=settings.processors_send_linger_ms)
    )

    async def close_sink(*_: Any, **__: Any) -> None:
        await asyncio.to_thread(sink.close)

    app.on_before_shutdown.connect(close_sink)
    # Keys go through the app's default JSON codec, values are an account's JSON as it is.
    accounts = AccountTable(
        app.Table("accounts", default=None, partitions=USER_PARTITIONS, value_type=bytes)
    )

    async def forget_live_accounts(*_: Any, **__: Any) -> None:
        accounts.forget()

    app.on_partitions_revoked.connect(forget_live_accounts)
    app.on_partitions_assigned.connect(forget_live_accounts)

    async def park(event: EventT[Any], error: ContractError, acks: Acknowledger) -> None:
        metrics.DEAD_LETTERS.labels(event.message.topic).inc()
        headers = parked_headers(
            _headers(event),
            topic=event.message.topic,
            partition=event.message.partition,
            offset=event.message.offset,
            consumer=settings.processors_app_id,
            error=error,
        )
        parked = await sink.send(
            topology.deadletter.name, key=event.key, value=event.value, headers=headers
        )
        acks.caused(parked)
        _log.warning("record parked on the dead-letter topic: %s", error)

    async def decoded(
        acks: Acknowledger, *, unread: frozenset[str] = frozenset()
    ) -> AsyncIterator[tuple[EventT[Any], Envelope[Any]]]:
        """Each input decoded, the undecodable parked; those whose type header is in
        ``unread`` are passed over (still acknowledged) without being decoded."""
        async for event in acks.events():
            headers = _headers(event)
            if unread and header_type(headers) in unread:
                continue
            try:
                envelope = decode(event.value, headers)
            except ContractError as error:
                await park(event, error, acks)
                continue
            metrics.EVENTS.labels(event.message.topic, envelope.type).inc()
            yield event, envelope

    async def write(
        cause: Envelope[Any], caused: list[Event], acks: Acknowledger, account: Account
    ) -> None:
        cause_job = getattr(cause.data, "job_id", None)
        for data in caused:
            trace = event_trace(cause.trace)
            if isinstance(data, JobQueued) and data.job_id != cause_job:
                # A waiting job sent on its turn, which another job's start or end gave it:
                # its dispatch continues its own request's trace.
                hold = account.holds.get(data.job_id)
                if hold is not None and hold.trace:
                    trace = child_traceparent(hold.trace)
            envelope = Envelope.wrap(
                data,
                user_id=cause.user_id,
                source=SOURCE,
                trace=trace,
                event_id=caused_event_id(data),
            )
            value, headers = encode(envelope), kafka_headers(envelope)
            for spec in topology.destinations(data):
                delivery = await sink.send(
                    spec.name, key=partition_key(envelope, spec), value=value, headers=headers
                )
                acks.caused(delivery)

    def observe(before: Account, cause: Envelope[Any], caused: list[Event]) -> None:
        for data in caused:
            if isinstance(data, JobRejected):
                metrics.REJECTIONS.labels(data.reason.value).inc()
            elif isinstance(data, JobAccepted):
                metrics.ACCEPTED.labels(data.tier.value).inc()
            elif isinstance(data, CreditsSettled | CreditsReleased):
                hold = before.holds.get(data.job_id)
                if hold is not None:
                    waited = (cause.time - hold.requested_at).total_seconds()
                    outcome = "settled" if isinstance(data, CreditsSettled) else "released"
                    metrics.RESERVE_TO_CLOSE.labels(outcome).observe(max(0.0, waited))

    credit_wait = CreditWait(limit_s=settings.processors_credit_wait_s)
    spans = tracer(__name__)

    def decision_span(cause: Envelope[Any]) -> AbstractContextManager[Span]:
        """A span for what a job's command or outcome did to its account; other inputs
        (ledger records, plan changes) get none."""
        if not isinstance(cause.data, _DECIDED):
            return nullcontext(INVALID_SPAN)
        attributes = {
            "genstream.account": cause.user_id,
            "genstream.job_id": cause.subject,
            "genstream.event": cause.type,
        }
        return span_from(spans, "processors.decide", cause.trace, attributes=attributes)

    def describe_decision(span: Span, caused: list[Event]) -> None:
        if not span.is_recording():
            return
        for data in caused:
            if isinstance(data, JobAccepted):
                span.set_attribute("genstream.tier", data.tier.value)
                span.set_attribute("genstream.outcome", "accepted")
            elif isinstance(data, JobRejected):
                span.set_attribute("genstream.outcome", f"rejected:{data.reason.value}")
            elif isinstance(data, CreditsSettled | CreditsReleased):
                outcome = "settled" if isinstance(data, CreditsSettled) else "released"
                span.set_attribute("genstream.outcome", outcome)

    async def wait_for_credits(event: EventT[Any], acks: Acknowledger) -> None:
        """The request goes round again, behind the ledger records read meanwhile."""
        metrics.CREDIT_WAITS.inc()
        headers = credit_wait.again(_headers(event), time.time())
        again = await sink.send(
            topology.requested.name, key=event.key, value=event.value, headers=headers
        )
        acks.caused(again)

    async def account_agent(stream: faust.StreamT[Any]) -> None:
        acks = Acknowledger(stream, on_batch_end=accounts.flush)
        async for event, envelope in decoded(acks, unread=_OWN_LEDGER):
            before = accounts.get(envelope.user_id)
            may_wait = isinstance(envelope.data, JobRequested) and credit_wait.may_wait(
                _headers(event), time.time()
            )
            with decision_span(envelope) as span:
                try:
                    after, caused = apply(
                        before, envelope.data, prices, may_wait=may_wait, trace=envelope.trace
                    )
                except CreditsOwedError:
                    span.set_attribute("genstream.outcome", "credit_wait")
                    await wait_for_credits(event, acks)
                    continue
                if after != before:
                    accounts.set(envelope.user_id, after, partition=event.message.partition)
                observe(before, envelope, caused)
                describe_decision(span, caused)
                await write(envelope, caused, acks, after)

    async def outcome_agent(stream: faust.StreamT[Any]) -> None:
        acks = Acknowledger(stream)
        async for event, envelope in decoded(acks, unread=_NOT_OUTCOMES):
            if isinstance(envelope.data, _OUTCOME_TYPES):
                delivery = await sink.send(
                    topology.outcomes.name,
                    key=envelope.user_id.encode(),
                    value=event.value,
                    headers=_headers(event),
                )
                acks.caused(delivery)

    inputs = raw_topic(app, *(spec.name for spec in topology.account_inputs))

    @functools.cache
    def depth_admin() -> AdminClient:
        # One for every measurement, made at the first: a new one each time connects anew.
        return AdminClient(settings.kafka.librdkafka("depth"))

    async def measure_depth() -> None:
        depths = await asyncio.to_thread(
            tier_depths, settings.kafka, topology.tiers, admin=depth_admin()
        )
        for (workload, tier), depth in depths.items():
            metrics.TIER_DEPTH.labels(workload.value, tier.value).set(depth)

    # Expiries written and not yet seen back as outcomes, so each is written once, not
    # every sweep; one lost on the way is written again after a minute.
    expiries_sent: dict[str, float] = {}

    async def expire_overdue() -> None:
        now, clock = datetime.now(UTC), time.monotonic()
        for job_id, sent_at in list(expiries_sent.items()):
            if clock - sent_at > 60:
                del expiries_sent[job_id]
        deliveries = []
        for user_id, account in list(accounts.items()):
            for expiry in overdue(account, now):
                if expiry.job_id in expiries_sent:
                    continue
                expiries_sent[expiry.job_id] = clock
                envelope = Envelope.wrap(
                    expiry, user_id=user_id, source=SOURCE, event_id=caused_event_id(expiry)
                )
                metrics.EXPIRED.inc()
                deliveries.append(
                    await sink.send(
                        topology.lifecycle.name,
                        key=partition_key(envelope, topology.lifecycle),
                        value=encode(envelope),
                        headers=kafka_headers(envelope),
                    )
                )
        await asyncio.gather(*deliveries)

    app.timer(interval=settings.processors_depth_interval_s, name="tier-depth")(measure_depth)
    app.timer(interval=settings.processors_expiry_interval_s, name="expiry")(expire_overdue)
    app.agent(inputs, name="accounts")(account_agent)
    app.agent(raw_topic(app, topology.lifecycle.name), name="outcomes")(outcome_agent)
    return app
