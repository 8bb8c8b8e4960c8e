"""The projection: consumes event topics and keeps the PostgreSQL read model."""
