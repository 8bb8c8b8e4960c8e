"""Alembic environment: the URL and an optional target schema come from the caller."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

from genstream.db.models import Base

config = context.config
url = config.attributes["url"]
schema = config.attributes.get("schema")


def run_migrations_online() -> None:
    engine = create_engine(url)
    with engine.connect() as connection:
        if schema:
            connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            connection.execute(text(f'SET search_path TO "{schema}"'))
            connection.commit()
            connection.dialect.default_schema_name = schema
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            version_table_schema=schema,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
