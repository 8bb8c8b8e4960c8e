"""The rebuild's bulk loader stores what the service's projection stores, batch for batch."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

from api.projection.bulk import BulkModel, BulkProjection, BulkShard
from api.projection.compare import differences
from api.projection.projector import Projection
from contracts import Envelope
from genstream.db import sync_engine, upgrade
from genstream.settings import StackSettings
from tests.integration.api.lifecycle import Story, add_job, add_user, granted, job_row


@pytest.fixture
def twin(stack: StackSettings, unique: str) -> Iterator[tuple[Engine, Engine, str, str]]:
    """Two fresh schemas with the same users and jobs: one for each projection."""
    names = (f"test_{unique}_live", f"test_{unique}_bulk")
    for name in names:
        upgrade(stack.pg, schema=name)
    engines = [sync_engine(stack.pg, schema=name) for name in names]
    try:
        yield engines[0], engines[1], names[0], names[1]
    finally:
        for engine in engines:
            engine.dispose()
        cleanup = sync_engine(stack.pg)
        with cleanup.begin() as connection:
            for name in names:
                connection.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        cleanup.dispose()


def _events(live: Engine) -> tuple[list[Envelope[Any]], dict[str, str]]:
    user = add_user(live)
    jobs = {name: add_job(live, user) for name in ("done", "retried", "failed", "late", "open")}
    done, retried, failed, late, open_ = (Story(user, jobs[n]) for n in jobs)
    events: list[Envelope[Any]] = [granted(user, 100)]
    events += [done.accepted(), done.reserved(), done.queued(), done.started(), done.preview(1)]
    events += [done.completed(), done.settled(4, 1)]
    events += [retried.accepted(), retried.reserved(), retried.queued(), retried.started("a")]
    events += [retried.retried(2), retried.started("b", 2), retried.completed("b", 2)]
    events += [retried.settled(5, 0)]
    events += [failed.accepted(), failed.reserved(), failed.started(), failed.failed()]
    events += [failed.released()]
    events += [late.accepted(), late.reserved(), late.queued(), late.started(), late.completed()]
    events += [open_.accepted(), open_.reserved(), open_.queued()]
    # After their jobs ended: a preview stored late, and copies of stored events.
    events += [late.preview(2), *events[1:8]]
    return events, jobs


def _indexes(engine: Engine) -> set[str]:
    """The deferred tables' index definitions, their schema left out."""
    query = text(
        "SELECT replace(indexdef, schemaname || '.', '') FROM pg_indexes "
        "WHERE schemaname = current_schema() "
        "AND tablename IN ('job_events', 'credit_ledger', 'jobs')"
    )
    with engine.connect() as connection:
        return set(connection.scalars(query))


@pytest.mark.parametrize(("batch", "index"), [(1, True), (3, False), (7, True), (100, False)])
def test_bulk_loading_stores_what_the_projection_stores(
    twin: tuple[Engine, Engine, str, str], batch: int, index: bool
) -> None:
    live, bulk, live_schema, bulk_schema = twin
    events, jobs = _events(live)
    project = Projection(notify=False)
    with BulkProjection(bulk, submissions=live_schema, index=index) as load:
        for start in range(0, len(events), batch):
            with live.begin() as connection:
                project(connection, events[start : start + batch])
            load(events[start : start + batch])
        load.finish()

    with live.connect() as connection:
        assert differences(connection, live=live_schema, rebuilt=bulk_schema) == []
    assert job_row(bulk, jobs["late"])["preview"] is not None
    live_indexes, bulk_indexes = _indexes(live), _indexes(bulk)
    assert bulk_indexes == live_indexes if index else bulk_indexes < live_indexes
    assert job_row(bulk, jobs["done"])["credits_charged"] == 4
    assert job_row(bulk, jobs["open"])["status"] == "queued"


def test_shards_that_split_jobs_and_copy_events_load_what_the_projection_stores(
    twin: tuple[Engine, Engine, str, str],
) -> None:
    live, bulk, live_schema, bulk_schema = twin
    events, jobs = _events(live)
    project = Projection(notify=False)
    with live.begin() as connection:
        project(connection, events)
    # Shard 0 gets the events but the end of the "retried" job (12-14) and the late job's
    # preview (29); shard 1 gets those, and copies of the "done" job's events (1-7).
    split = {12, 13, 14, 29}
    first = [event for index, event in enumerate(events) if index not in split]
    second = [*events[1:8], *(events[index] for index in sorted(split))]
    model = BulkModel(bulk, submissions=live_schema)
    model.prepare()
    for number, share in enumerate((first, second)):
        with BulkShard(bulk, shard=number) as shard:
            shard(share)
            shard.finish()
    model.complete(shards=2)

    with live.connect() as connection:
        assert differences(connection, live=live_schema, rebuilt=bulk_schema) == []
    assert job_row(bulk, jobs["retried"])["status"] == "completed"
    assert job_row(bulk, jobs["late"])["preview"] is not None
    with bulk.connect() as connection:
        copies = connection.scalar(
            text("SELECT count(*) - count(DISTINCT event_id) FROM job_events")
        )
    assert copies == 0
