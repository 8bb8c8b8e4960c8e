"""PostgreSQL: settings, schema, engines and migrations."""

from genstream.db.config import PostgresSettings
from genstream.db.engine import async_engine, sync_engine, upgrade
from genstream.db.models import Base, OutboxMessage

__all__ = ["Base", "OutboxMessage", "PostgresSettings", "async_engine", "sync_engine", "upgrade"]
