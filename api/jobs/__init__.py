"""Jobs: submission with idempotency keys, a first look at a job, cancellation."""

from api.jobs.routes import router

__all__ = ["router"]
