"""What a workload needs from a system under test; genstream and the Celery peer provide it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from bench.meter import KafkaMeter
from bench.watch import EventClock

__all__ = ["Endpoint", "JobSpec", "System", "Tier"]

Tier = Literal["pro", "free"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where submissions go over HTTP, and what a submission looks like."""

    host: str
    port: int
    path: str
    body: str
    tokens: tuple[str, ...]
    workers: int
    """Server processes behind the endpoint."""


@dataclass(frozen=True, slots=True)
class JobSpec:
    job_id: str
    user: int
    """Index of the user among those of its tier."""
    tier: Tier
    steps: int
    step_ms: int


class System(Protocol):
    name: str

    @property
    def clock(self) -> EventClock:
        """Arrivals of ``started`` and ``completed`` (for genstream, every lifecycle event)."""
        ...

    def start_api(self, *, purpose: Literal["submit", "dispatch"]) -> Endpoint:
        """Starts the HTTP endpoint; for ``submit`` its submissions go nowhere further."""
        ...

    def stop_api(self) -> None: ...

    def start_workers(self, count: int) -> None:
        """Runs ``count`` worker processes (replacing those running) and waits until ready."""
        ...

    def stop_workers(self) -> None: ...

    def enqueue(self, jobs: Sequence[JobSpec]) -> None:
        """Hands jobs to the system directly, behind its HTTP endpoint."""
        ...

    def admitted(self, job_ids: Sequence[str], *, timeout_s: float) -> int:
        """Waits until the jobs are queued for the workers; returns how many are."""
        ...

    def pids(self) -> dict[str, int]:
        """The running service processes by name."""
        ...

    def kafka_meter(self) -> KafkaMeter | None:
        """What the system's Kafka readers read (and the brokers answered) over a window;
        None where the system has no Kafka."""
        ...
