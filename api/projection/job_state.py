"""A job's state, folded from its lifecycle events: the status precedence lives here.

Events are folded in the order the projection stored them. The rules make the result safe
against the ways the lifecycle is imperfect: copies of one event (dropped earlier, by id),
writers that race (the processors and a worker both ending a job), and a worker's events
landing before the processors' (a fast job can start before its ``job.queued`` arrives).

- A terminal status (completed, failed, cancelled, expired, rejected) is final: the first
  terminal event stored decides, and no later event changes the status.
- Otherwise the status only moves forward, ordered by (attempt, phase), phases being
  accepted < queued < running. A retry queues the next attempt, so running → queued is
  forward when the attempt grows.
- The attempt fields (worker, start, queue time, error) are those of the latest attempt; of
  two starts of one attempt (a job re-run after its worker died) the later one counts. A
  finished job keeps the attempt that finished and the starts that came before its end.

Everything but the choice among several terminal events is a function of the set of events,
not of their order, so copies and reordering change nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from contracts import (
    Event,
    JobAccepted,
    JobCancelled,
    JobCompleted,
    JobExpired,
    JobFailed,
    JobPreview,
    JobQueued,
    JobRejected,
    JobRetried,
    JobStarted,
    JobStatus,
)

__all__ = ["PHASES", "JobState", "StoredEvent", "fold"]

PHASES: Final = {JobStatus.ACCEPTED: 1, JobStatus.QUEUED: 2, JobStatus.RUNNING: 3}
"""Order of the non-terminal statuses within one attempt (pending is 0)."""

_TERMINAL: Final[dict[type[Event], JobStatus]] = {
    JobCompleted: JobStatus.COMPLETED,
    JobFailed: JobStatus.FAILED,
    JobCancelled: JobStatus.CANCELLED,
    JobExpired: JobStatus.EXPIRED,
    JobRejected: JobStatus.REJECTED,
}


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """A lifecycle event as the projection keeps it: its envelope id and time, and its data."""

    event_id: str
    time: datetime
    data: Event


@dataclass(frozen=True, slots=True)
class _Start:
    attempt: int
    time: datetime
    event_id: str
    worker_id: str


@dataclass(slots=True)
class JobState:
    """What is known of a job; ``columns()`` says what its ``jobs`` row holds."""

    tier: str | None = None
    credits_reserved: int | None = None
    _end: StoredEvent | None = None
    """The first terminal event stored."""
    _position: tuple[int, int] = (0, 0)
    """Furthest (attempt, phase) of the non-terminal events."""
    _starts: list[_Start] = field(default_factory=list)
    _queued: dict[int, datetime] = field(default_factory=dict)
    """Earliest queue (or retry) time per attempt."""
    _retries: dict[int, JobRetried] = field(default_factory=dict)
    _attempt_times: dict[int, datetime] = field(default_factory=dict)
    """Earliest event per attempt, to tell which attempts began before a job ended."""
    _preview: tuple[tuple[int, int, datetime, str], JobPreview] | None = None

    def apply(self, event: StoredEvent) -> None:
        data = event.data
        match data:
            case JobAccepted():
                self.tier = self.tier or data.tier.value
                if self.credits_reserved is None:
                    self.credits_reserved = data.credits_reserved
                self._reach(1, JobStatus.ACCEPTED, event)
            case JobQueued():
                self.tier = self.tier or data.tier.value
                self._reach(data.attempt, JobStatus.QUEUED, event)
                self._queue(data.attempt, event.time)
            case JobRetried():
                self._reach(data.attempt, JobStatus.QUEUED, event)
                self._queue(data.attempt, event.time)
                self._retries.setdefault(data.attempt, data)
            case JobStarted():
                self._reach(data.attempt, JobStatus.RUNNING, event)
                self._starts.append(
                    _Start(data.attempt, event.time, event.event_id, data.worker_id)
                )
            case JobPreview():
                rank = (data.attempt, data.step, event.time, event.event_id)
                if self._preview is None or rank > self._preview[0]:
                    self._preview = (rank, data)
            case _ if type(data) in _TERMINAL:
                if self._end is None:
                    self._end = event

    def _reach(self, attempt: int, status: JobStatus, event: StoredEvent) -> None:
        self._position = max(self._position, (attempt, PHASES[status]))
        known = self._attempt_times.get(attempt)
        if known is None or event.time < known:
            self._attempt_times[attempt] = event.time

    def _queue(self, attempt: int, time: datetime) -> None:
        known = self._queued.get(attempt)
        if known is None or time < known:
            self._queued[attempt] = time

    @property
    def status(self) -> JobStatus:
        if self._end is not None:
            return _TERMINAL[type(self._end.data)]
        phase = self._position[1]
        return next((s for s, p in PHASES.items() if p == phase), JobStatus.PENDING)

    def _attempt(self) -> int | None:
        end = self._end
        if end is None:
            return self._position[0] or None
        if isinstance(end.data, JobCompleted | JobFailed):
            return end.data.attempt
        begun = [a for a, time in self._attempt_times.items() if time <= end.time]
        return max(begun, default=None)

    def _start(self, attempt: int | None) -> _Start | None:
        end = self._end
        starts = [s for s in self._starts if s.attempt == attempt]
        if end is not None:
            starts = [s for s in starts if s.time <= end.time]
            if isinstance(end.data, JobCompleted):
                # The start of the worker that finished it, when it is known.
                own = [s for s in starts if s.worker_id == end.data.worker_id]
                starts = own or starts
        return max(starts, key=lambda s: (s.time, s.event_id), default=None)

    def _error(self, attempt: int | None) -> tuple[str | None, str | None]:
        match None if self._end is None else self._end.data:
            case JobCompleted():
                return None, None
            case JobFailed() as failed:
                return failed.error_code, failed.error_message
            case JobCancelled() as cancelled:
                return "cancelled", cancelled.reason
            case JobExpired() as expired:
                return "expired", expired.reason
            case JobRejected() as rejected:
                return rejected.reason.value, rejected.detail
        retry = self._retries.get(attempt or 0)
        return (retry.error_code, retry.error_message) if retry else (None, None)

    def columns(self) -> dict[str, Any]:
        """The ``jobs`` columns this state sets."""
        attempt = self._attempt()
        start = self._start(attempt)
        end = self._end
        completed = end.data if end is not None and isinstance(end.data, JobCompleted) else None
        error_code, error = self._error(attempt)
        preview = None
        if self._preview is not None:
            shot = self._preview[1]
            preview = {
                "key": shot.preview_key,
                "content_type": shot.content_type,
                "blurhash": shot.blurhash,
                "attempt": shot.attempt,
                "step": shot.step,
            }
        return {
            "status": self.status.value,
            "tier": self.tier,
            "credits_reserved": self.credits_reserved,
            "attempt": attempt,
            "worker_id": completed.worker_id if completed else (start.worker_id if start else None),
            "queued_at": self._queued.get(attempt or 0),
            "started_at": start.time if start else None,
            "finished_at": end.time if end is not None else None,
            "error_code": error_code,
            "error": error[:4000] if error is not None else None,
            "outputs": [o.model_dump(mode="json") for o in completed.outputs]
            if completed
            else None,
            "run_ms": completed.run_ms if completed else None,
            "preview": preview,
        }


def fold(events: Iterable[StoredEvent]) -> JobState:
    """What is known of a job after ``events``, in the order they were stored."""
    state = JobState()
    for event in events:
        state.apply(event)
    return state
