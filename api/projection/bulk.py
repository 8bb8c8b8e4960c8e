"""A fresh read model loaded from a replay in bulk: what ``Projection`` stores batch by batch,
for much less work per event. ``genstream replay rebuild`` uses it on its scratch schema.

The service's projection must be ready for any state of the tables, so each batch inserts
with ``ON CONFLICT``, reads every touched job's whole history back, validates it again and
folds it, and adds each batch to the balances. Here the schema starts empty and only the
replay writes to it, which allows:

- the load is split into shards, each a share of the topics' partitions, which may run in
  processes of their own: every job's events share a partition (its key), so a shard folds
  whole histories. ``BulkModel`` prepares the schema once and completes it once the shards
  are in; ``BulkShard`` loads one share;
- a shard's rows stream in through one ``COPY`` per table for the whole replay, each on a
  connection of its own whose writes leave from a thread of their own, so that PostgreSQL
  stores rows while the shard decodes the next ones. The rows go in replay order, so
  ``seq`` follows the shard's replay; a copy of an event the shard already stored is dropped
  here, by id, and copies stored by two shards are dropped at the end, the first kept;
- the unique and secondary indexes of the two logs and of ``jobs``, and the latter's foreign
  key, are dropped while they load and, when the model is kept, built again at the end (a
  sort each, not a million random inserts);
- each job is folded in memory as its stored events arrive; ``fold`` is incremental, so
  this is the fold of its stored history. A job's state is set aside (and dropped) once it
  ends, or at the end of the shard; a job that gains an event after it ended, or whose
  events more than one shard stored, is folded again from the table, as ``refold_jobs``
  would;
- each ``jobs`` row is written once, at the end: the submission as it was when the load
  began, its folded state, and the charge its settlement or release adds up to;
- balances are summed once, at the end, from the stored ledger: they are sums over it,
  whatever the batches were.

The rows are those ``Projection`` writes (the columns of ``event_row`` with the same JSON
of the event's data, ``ledger_row``, ``JobState.columns`` serialised the same way), so the
result is the same read model.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from types import TracebackType
from typing import Any, Final, Self

from psycopg.copy import QueuedLibpqWriter
from sqlalchemy import Engine

from api.projection.compare import quoted
from api.projection.job_state import JobState, StoredEvent, fold
from api.projection.jobs import LIFECYCLE_TYPES, stored_event
from api.projection.ledger import ledger_row
from contracts import TERMINAL_STATUSES, CreditEvent, Envelope

__all__ = ["BulkProjection"]

_EVENT_COLUMNS: Final = ("event_id", "job_id", "user_id", "type", "time", "data")
_LEDGER_COLUMNS: Final = (
    "event_id",
    "user_id",
    "kind",
    "amount",
    "reserved_change",
    "job_id",
    "idempotency_key",
    "detail",
    "occurred_at",
)
_STATE_COLUMNS: Final = (
    "status",
    "tier",
    "credits_reserved",
    "attempt",
    "worker_id",
    "queued_at",
    "started_at",
    "finished_at",
    "error_code",
    "error",
    "outputs",
    "run_ms",
    "preview",
)
_JSON_COLUMNS: Final = frozenset({"outputs", "preview"})
_SUBMITTED: Final = (
    "id",
    "user_id",
    "type",
    "input",
    "media",
    "webhook_url",
    "idempotency_key",
    "request_hash",
    "event_id",
    "event_trace",
    "emitted_at",
    "created_at",
    "webhook_events",
    "metadata",
    "end_user",
    "api_key_id",
    "credits_quoted",
    "deleted_at",
    "outputs_expired_at",
    "cancel_requested_at",
    "updated_at",
)
"""What the API wrote (``updated_at`` last: the load sets it)."""
_DEFERRED: Final = ("job_events", "credit_ledger", "jobs")
_WORK_MEM: Final = "256MB"
"""For the statements that end a load, all of them groupings over every stored event."""

# Staging tables, unlogged (they live for one load), that every shard's connections see: the
# submissions as the load began, and each folded state (for a job, the row of the highest
# shard, then the highest ``ord``, counts: the model's own refolds come last).
_STAGING: Final = f"""
CREATE UNLOGGED TABLE bulk_states (
    shard integer, ord bigint, id text, status text, tier text, credits_reserved bigint,
    attempt integer, worker_id text, queued_at timestamptz, started_at timestamptz,
    finished_at timestamptz, error_code text, error text, outputs jsonb, run_ms bigint,
    preview jsonb
);
CREATE UNLOGGED TABLE bulk_submitted AS SELECT {", ".join(_SUBMITTED)} FROM {{live}}.jobs;
INSERT INTO users (id, email, plan, created_at)
SELECT id, id::text || '@replay.invalid', plan, created_at FROM {{live}}.users
"""  # noqa: S608 - constant names and a quoted schema
# As ``record_charges`` leaves them once every batch is in.
_CHARGES: Final = """
    SELECT job_id, SUM(-reserved_change - amount) AS amount
    FROM credit_ledger
    WHERE job_id IS NOT NULL AND kind IN ('settled', 'released')
    GROUP BY job_id
"""
_SUBMITTED_COLUMNS: Final = ", ".join(_SUBMITTED)
_FROM_SUBMITTED: Final = ", ".join(f"s.{c}" for c in _SUBMITTED if c != "updated_at")
_WRITE_JOBS: Final = f"""
INSERT INTO jobs ({_SUBMITTED_COLUMNS}, {", ".join(_STATE_COLUMNS)}, credits_charged)
SELECT {_FROM_SUBMITTED}, now(), {", ".join(f"b.{c}" for c in _STATE_COLUMNS)}, c.amount
FROM bulk_submitted AS s
JOIN (SELECT DISTINCT ON (id) * FROM bulk_states ORDER BY id, shard DESC, ord DESC) AS b
  ON b.id = s.id
LEFT JOIN ({_CHARGES}) AS c ON c.job_id = s.id;
INSERT INTO jobs ({_SUBMITTED_COLUMNS}, credits_charged)
SELECT {_FROM_SUBMITTED}, CASE WHEN c.amount IS NULL THEN s.updated_at ELSE now() END, c.amount
FROM bulk_submitted AS s LEFT JOIN ({_CHARGES}) AS c ON c.job_id = s.id
WHERE NOT EXISTS (SELECT 1 FROM bulk_states AS b WHERE b.id = s.id);
INSERT INTO credit_balances (user_id, balance, reserved, updated_at)
SELECT user_id, SUM(amount), SUM(reserved_change), now() FROM credit_ledger GROUP BY user_id;
DROP TABLE bulk_states, bulk_submitted
"""  # noqa: S608 - constant names
_LATE_EVENTS: Final = (
    "SELECT job_id, event_id, type, time, data FROM job_events "
    "WHERE job_id = ANY(%s) ORDER BY job_id, seq"
)
# Copies of one event that two shards stored (the shards dedupe their own): all but the
# first go, and their jobs are folded again, with the jobs whose events two shards stored.
_SHARED_COPIES: Final = """
DELETE FROM {table} AS e
USING (SELECT event_id, min(seq) AS first FROM {table} GROUP BY event_id HAVING count(*) > 1) AS c
WHERE e.event_id = c.event_id AND e.seq > c.first
RETURNING {returned}
"""
_SPLIT_JOBS: Final = "SELECT id FROM bulk_states GROUP BY id HAVING count(DISTINCT shard) > 1"
# What the deferred tables are indexed by besides their primary keys: unique and foreign key
# constraints, then plain indexes.
_DEFERRED_INDEXES: Final = """
SELECT c.relname, 'ALTER TABLE ' || c.relname || ' DROP CONSTRAINT ' || quote_ident(k.conname),
       'ALTER TABLE ' || c.relname || ' ADD CONSTRAINT ' || quote_ident(k.conname) || ' '
       || pg_get_constraintdef(k.oid)
FROM pg_constraint AS k JOIN pg_class AS c ON c.oid = k.conrelid
WHERE c.relname = ANY(%(tables)s) AND c.relnamespace = current_schema()::regnamespace
  AND k.contype IN ('u', 'f')
UNION ALL
SELECT c.relname, 'DROP INDEX ' || quote_ident(i.relname), pg_get_indexdef(x.indexrelid)
FROM pg_index AS x JOIN pg_class AS c ON c.oid = x.indrelid JOIN pg_class AS i
  ON i.oid = x.indexrelid
WHERE c.relname = ANY(%(tables)s) AND c.relnamespace = current_schema()::regnamespace
  AND NOT x.indisprimary
  AND NOT EXISTS (SELECT 1 FROM pg_constraint AS k WHERE k.conindid = x.indexrelid)
ORDER BY 1, 2
"""


def _json(value: Any) -> str:
    # As the JSONB binds of ``refold_jobs`` write it: None is JSON null, not SQL NULL.
    return json.dumps(value)


def _state_row(order: int, job_id: str, state: JobState) -> tuple[Any, ...]:
    columns = state.columns()
    values = (_json(columns[c]) if c in _JSON_COLUMNS else columns[c] for c in _STATE_COLUMNS)
    return (order, job_id, *values)


class _Stream:
    """A connection of its own, on which ``start`` opens a ``COPY`` into a table that stays
    open until ``end``; the rows leave for the server from a thread while the caller goes
    on. Leaving it rolls back what was not committed."""

    def __init__(self, engine: Engine) -> None:
        self._pooled = engine.raw_connection()
        self.connection: Any = self._pooled.driver_connection
        self._copying = ExitStack()
        self._copy: Any = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            # With an error, the server is told to drop the rows it was sent.
            self._copying.__exit__(kind, error, traceback)
        finally:
            self._pooled.close()  # the pool rolls back what is left

    def execute(self, statement: str, params: Any = None) -> Any:
        return self.connection.cursor().execute(statement, params)

    def start(self, table: str, columns: Sequence[str]) -> None:
        cursor = self.connection.cursor()
        statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
        self._copy = self._copying.enter_context(
            cursor.copy(statement, writer=QueuedLibpqWriter(cursor))
        )

    def write(self, row: Sequence[Any]) -> None:
        self._copy.write_row(row)

    def end(self) -> None:
        """Waits for the server to have every row."""
        self._copy = None
        self._copying.close()

    def commit(self) -> None:
        self.connection.commit()


class BulkModel:
    """The scratch schema's side of a load: ``prepare`` once before any shard starts,
    ``complete`` once after every shard has finished.

    ``submissions`` is the schema whose users and job rows (as the API wrote them) the model
    starts from. Without ``index``, the deferred indexes and constraints are not built
    again: a model that is compared and dropped needs none.
    """

    def __init__(self, engine: Engine, *, submissions: str, index: bool = True) -> None:
        self._engine = engine
        self._submissions = quoted(submissions)
        self._index = index
        self._restore: list[str] = []

    def prepare(self) -> None:
        with _Stream(self._engine) as stream:
            found = stream.execute(_DEFERRED_INDEXES, {"tables": list(_DEFERRED)}).fetchall()
            for _, drop, _ in found:
                stream.execute(drop)
            self._restore = [create for _, _, create in found]
            stream.execute(_STAGING.format(live=self._submissions))
            stream.commit()

    def complete(self, *, shards: int) -> None:
        """Every ``jobs`` row, the balances the ledger adds up to, and the indexes."""
        with _Stream(self._engine) as stream:
            stream.execute(f"SET LOCAL work_mem = '{_WORK_MEM}'")
            if shards > 1:
                self._join_shards(stream, shards)
            stream.execute(_WRITE_JOBS)
            for statement in self._restore if self._index else ():
                stream.execute(statement)
            stream.commit()

    def _join_shards(self, stream: _Stream, shards: int) -> None:
        stream.execute(_SHARED_COPIES.format(table="credit_ledger", returned="1"))
        copied = stream.execute(_SHARED_COPIES.format(table="job_events", returned="e.job_id"))
        jobs = {job_id for (job_id,) in copied.fetchall()}
        jobs.update(job_id for (job_id,) in stream.execute(_SPLIT_JOBS).fetchall())
        if not jobs:
            return
        refolded = list(_refold(stream, jobs))
        with stream.connection.cursor().copy(
            f"COPY bulk_states (shard, {', '.join(_STATE_ROW)}) FROM STDIN"
        ) as copy:
            for order, (job_id, state) in enumerate(refolded):
                copy.write_row((shards, *_state_row(order, job_id, state)))


def _refold(stream: _Stream, jobs: set[str]) -> Iterator[tuple[str, JobState]]:
    """The jobs folded again from their stored events, as ``refold_jobs`` folds them."""
    rows = stream.execute(_LATE_EVENTS, (sorted(jobs),)).fetchall()
    for job_id, events in itertools.groupby(rows, key=lambda row: row[0]):
        yield job_id, fold(stored_event(*row[1:]) for row in events)


_STATE_ROW: Final = ("ord", "id", *_STATE_COLUMNS)


class BulkShard:
    """Loads one share of a replay into a prepared model (``BulkModel``).

    A context manager that holds its connections; call it with each batch, in the replay
    order of its partitions, then ``finish`` once. ``shard`` numbers the shards of a load
    from 0.
    """

    def __init__(self, engine: Engine, *, shard: int = 0) -> None:
        self._engine = engine
        self._shard = shard
        self._stack = ExitStack()
        self._states: dict[str, JobState] = {}
        self._ended: set[str] = set()
        """Jobs whose state was set aside and dropped."""
        self._late: set[str] = set()
        """Ended jobs that gained events since."""
        self._stored: set[str] = set()
        self._entered: set[str] = set()
        self._order = itertools.count()

    def __enter__(self) -> Self:
        with ExitStack() as opening:
            opening.enter_context(self._stack)
            self._events, self._ledger, self._jobs = (
                self._stack.enter_context(_Stream(self._engine)) for _ in range(3)
            )
            self._events.start("job_events", _EVENT_COLUMNS)
            self._ledger.start("credit_ledger", _LEDGER_COLUMNS)
            self._jobs.start("bulk_states", ("shard", *_STATE_ROW))
            opening.pop_all()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stack.__exit__(kind, error, traceback)

    def __call__(self, envelopes: Sequence[Envelope[Any]]) -> int:
        """Stores a batch; returns how many events were new."""
        new = 0
        for envelope in envelopes:
            if envelope.type in LIFECYCLE_TYPES:
                if envelope.id in self._stored:
                    continue
                self._stored.add(envelope.id)
                data = envelope.data
                job_id = envelope.subject
                self._events.write(
                    (
                        envelope.id,
                        job_id,
                        envelope.user_id,
                        envelope.type,
                        envelope.time,
                        # The JSON of ``event_row``'s ``model_dump(mode="json")``, in one step.
                        data.model_dump_json(),
                    )
                )
                self._fold(job_id, StoredEvent(envelope.id, envelope.time, data))
            elif isinstance(envelope.data, CreditEvent):
                if envelope.id in self._entered:
                    continue
                self._entered.add(envelope.id)
                row = ledger_row(envelope)
                self._ledger.write([row[c] for c in _LEDGER_COLUMNS])
            else:
                continue
            new += 1
        return new

    def _fold(self, job_id: str, event: StoredEvent) -> None:
        if job_id in self._ended:
            self._late.add(job_id)
            return
        state = self._states.get(job_id)
        if state is None:
            state = self._states[job_id] = JobState()
        state.apply(event)
        if state.status in TERMINAL_STATUSES:
            self._set_aside(job_id, state)
            del self._states[job_id]
            self._ended.add(job_id)

    def _set_aside(self, job_id: str, state: JobState) -> None:
        self._jobs.write((self._shard, *_state_row(next(self._order), job_id, state)))

    def finish(self) -> None:
        """Ends the shard's load: its logs committed, then the states of its jobs still open
        and of those refolded."""
        for stream in (self._events, self._ledger):
            stream.end()
            stream.commit()
        for job_id, state in self._states.items():
            self._set_aside(job_id, state)
        self._ended.update(self._states)
        self._states.clear()
        for job_id, state in self._refolded():
            self._set_aside(job_id, state)
        # Ends the refold's read too: its lock on the events would hold up their indexes.
        self._events.commit()
        self._jobs.end()
        self._jobs.commit()

    def _refolded(self) -> Iterator[tuple[str, JobState]]:
        if not self._late:
            return
        yield from _refold(self._events, self._late)
        self._late.clear()


class BulkProjection(BulkShard):
    """A load in one shard, in this process: the shard with its ``BulkModel``.

    A context manager; call it with each batch, in replay order, then ``finish`` once.
    """

    def __init__(self, engine: Engine, *, submissions: str, index: bool = True) -> None:
        super().__init__(engine)
        self._model = BulkModel(engine, submissions=submissions, index=index)

    def __enter__(self) -> Self:
        self._model.prepare()
        return super().__enter__()

    def finish(self) -> None:
        super().finish()
        self._model.complete(shards=1)
