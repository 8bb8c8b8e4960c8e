"""Settings of the read side: download links, queue estimates and event streams."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ReadSettings"]


class ReadSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    download_url_ttl_s: int = Field(default=900, ge=30, le=7 * 24 * 3600)
    """Lifetime of the presigned GET URLs of outputs and previews."""
    eta_runs: int = Field(default=50, ge=1, le=1000)
    """Recent completed runs of a job type whose median run time prices a queued job's wait."""
    eta_worker_window_s: int = Field(default=600, ge=10, le=7 * 24 * 3600)
    """Workers that started a job of the workload this recently count as serving it."""
    progress_topic: str = Field(
        default="jobs.progress", min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._-]+$"
    )
    """Where workers write progress; each API process reads it from its end, outside any group."""
    sse_heartbeat_s: float = Field(default=15.0, gt=0, le=300)
    """An idle event stream gets a comment this often, so proxies and clients keep it open."""
    sse_poll_s: float = Field(default=5.0, gt=0, le=300)
    """How often each API process looks for lifecycle events it was not notified of."""
    sse_client_buffer: int = Field(default=1000, ge=1, le=1_000_000)
    """Progress events held for one client; a client that lets more pile up is disconnected."""
    sse_retry_ms: int = Field(default=2000, ge=0, le=600_000)
    """The reconnection delay event streams advise to ``EventSource`` clients."""
    sse_streams_per_user: int = Field(default=10, ge=1, le=10_000)
    """Streams one user may hold open at once on one API process; past it, 429. Counted per
    process: behind a balancer of n processes a user may hold up to n times as many."""
    sse_streams_per_api_key: int = Field(default=10, ge=1, le=10_000)
    """Streams one API key may hold open at once on one API process (within its user's
    ``sse_streams_per_user``); past it, 429. Counted per process, as the user's are."""
    sse_refused_retry_after_s: int = Field(default=5, ge=1, le=3600)
    """The ``Retry-After`` of a stream refused past its cap: slots free only as streams close."""
    sse_pool_size: int = Field(default=4, ge=1, le=100)
    """Connections of the pool that event streams read with (news, resumed history, the job
    a stream opens on), kept apart from the pool of requests: streams wait on each other for
    these, and never take a connection a request needs. Fixed, no overflow."""
    sse_shutdown_grace_s: int = Field(default=10, ge=0, le=600)
    """A stopping API process closes the streams still open after this long (they never end
    on their own); their clients resume on another process from their last event id."""
