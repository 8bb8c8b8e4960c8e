"""PostgreSQL for real: migrations apply, a row is written and read back."""

from __future__ import annotations

import uuid

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from genstream.db import OutboxMessage
from genstream.db.engine import alembic_config
from genstream.settings import StackSettings


def _session(engine: Engine, schema: str) -> Session:
    return Session(bind=engine.execution_options(schema_translate_map={None: schema}))


def test_migrations_reach_the_head_revision(
    stack: StackSettings, pg_schema: tuple[Engine, str]
) -> None:
    engine, schema = pg_schema
    tables = inspect(engine).get_table_names(schema=schema)
    assert {"outbox", "alembic_version", "users", "credit_ledger"} <= set(tables)
    with engine.connect() as connection:
        query = text(f'SELECT version_num FROM "{schema}".alembic_version')  # noqa: S608
        version = connection.execute(query)
        assert (
            version.scalar_one()
            == ScriptDirectory.from_config(alembic_config(stack.pg)).get_current_head()
        )


def test_outbox_row_round_trips(pg_schema: tuple[Engine, str]) -> None:
    engine, schema = pg_schema
    event_id = uuid.uuid4()
    with _session(engine, schema) as session, session.begin():
        session.add(
            OutboxMessage(
                event_id=event_id,
                topic="jobs.requested",
                key=b"user-1",
                value=b'{"id": "x"}',
                headers=[["traceparent", "00-" + "1" * 32 + "-" + "2" * 16 + "-01"]],
            )
        )
    with _session(engine, schema) as session:
        row = session.scalars(select(OutboxMessage).where(OutboxMessage.event_id == event_id)).one()
        assert (row.topic, row.key, row.value) == ("jobs.requested", b"user-1", b'{"id": "x"}')
        assert row.headers[0][0] == "traceparent"
        assert row.published_at is None
        assert row.created_at.tzinfo is not None


def test_outbox_refuses_the_same_event_twice(pg_schema: tuple[Engine, str]) -> None:
    engine, schema = pg_schema
    event_id = uuid.uuid4()
    with _session(engine, schema) as session, session.begin():
        session.add(OutboxMessage(event_id=event_id, topic="t", value=b"1", headers=[]))
    with pytest.raises(IntegrityError), _session(engine, schema) as session, session.begin():
        session.add(OutboxMessage(event_id=event_id, topic="t", value=b"2", headers=[]))
