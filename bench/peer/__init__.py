"""The peer: the same workloads on Celery 5 with Redis, written as Celery's documentation
recommends (a queue per tier consumed in priority order, ``acks_late`` with a prefetch of
one, progress over Redis pub/sub), behind a FastAPI endpoint that calls ``apply_async``."""
