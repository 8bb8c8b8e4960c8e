"""Engines and migrations for the PostgreSQL read model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from genstream.db.config import PostgresSettings

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def _connect_args(schema: str | None) -> dict[str, Any]:
    # A schema of its own per test (or tenant) without changing any query.
    return {"options": f"-csearch_path={schema}"} if schema else {}


def sync_engine(settings: PostgresSettings, *, schema: str | None = None) -> Engine:
    return create_engine(
        settings.url(),
        pool_size=settings.pool_size,
        pool_pre_ping=True,
        # Statement values stay out of error messages and logs: they can hold emails and hashes.
        hide_parameters=True,
        connect_args=_connect_args(schema),
    )


def async_engine(
    settings: PostgresSettings,
    *,
    schema: str | None = None,
    pool_size: int | None = None,
    max_overflow: int = 10,
) -> AsyncEngine:
    """The API's engine. No ping before each checkout (a round trip per request): a
    connection found dead fails its request, which the API answers with 503 and
    ``Retry-After``, and SQLAlchemy then drops every pooled connection opened before it.

    ``pool_size`` (default ``settings.pool_size``) and ``max_overflow`` size its pool: a
    second engine with a small fixed pool keeps one kind of work (event streams) off the
    connections of another."""
    return create_async_engine(
        settings.url(),
        pool_size=settings.pool_size if pool_size is None else pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=False,
        # Statement values stay out of error messages and logs: they can hold emails and hashes.
        hide_parameters=True,
        connect_args=_connect_args(schema),
    )


def alembic_config(settings: PostgresSettings, *, schema: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["url"] = settings.url()
    config.attributes["schema"] = schema
    return config


def upgrade(
    settings: PostgresSettings, *, schema: str | None = None, revision: str = "head"
) -> None:
    """Applies migrations; with ``schema`` they land in that schema (tests use their own)."""
    command.upgrade(alembic_config(settings, schema=schema), revision)
