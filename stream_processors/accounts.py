"""A user's credits, plan usage and open jobs, and every decision about them.

``apply`` is pure: it takes the state and an event and returns the new state and the events
it causes (the operations it routes to change the copy it hands them). The stream processor
keeps one ``Account`` per user in a changelog-backed table and feeds it that user's commands,
ledger grants, plan changes and job outcomes in order.

Invariants (property-tested): the balance never goes below zero; a job holds credits from
its acceptance until exactly one settlement or release; available + held credits always
equal grants + purchases - charges; duplicates change nothing.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts import (
    EXPIRED_REASON,
    Catalog,
    CreditsGranted,
    CreditsPurchased,
    CreditsReleased,
    CreditsReserved,
    CreditsSettled,
    Event,
    JobAccepted,
    JobCancelled,
    JobCancelRequested,
    JobCompleted,
    JobExpired,
    JobFailed,
    JobInput,
    JobQueued,
    JobRejected,
    JobRequested,
    JobStarted,
    JobType,
    Plan,
    PlanChanged,
    RejectReason,
    Tier,
    tier_topic,
)

RECENT_LIMIT = 1000
"""Closed jobs, idempotency keys and ledger keys remembered per user for deduplication."""

VIDEO_TYPES = frozenset({JobType.VIDEO_GENERATE, JobType.VIDEO_ENHANCE})


class Reservation(BaseModel):
    """What a job's acceptance reserved: all its acceptance events say, to write them again."""

    # States stored before closed jobs were kept this compactly hold a whole ``Hold`` here.
    model_config = ConfigDict(extra="ignore")

    amount: int
    job_type: JobType
    tier: Tier


class Hold(Reservation):
    """An accepted job that has not finished: its credits, plan usage and how it was queued."""

    model_config = ConfigDict(extra="forbid")

    requested_at: datetime
    input: JobInput
    webhook_url: str | None = None
    deadline: datetime
    video_minutes: int = 0
    counts_as_video: bool = False
    status: Literal["waiting", "queued", "running"] = "queued"
    """``waiting``: accepted, credits reserved, not on the tier topic yet (the user's turn has
    not come); ``queued``: on the tier topic; ``running``: a worker started it."""
    trace: str | None = None
    """The request's ``traceparent``: a job queued later, on another job's end, keeps its own."""


class Closed(BaseModel):
    """How a job ended, kept so that a redelivered event can write the same events again."""

    model_config = ConfigDict(extra="forbid")

    how: Literal["rejected", "completed", "failed", "cancelled", "expired"]
    reason: str = ""
    detail: str = ""
    accepted: Reservation | None = None
    """The job's acceptance, for jobs that ran or were queued."""
    cancelled_here: bool = False
    """Cancelled by the processors while queued (they wrote the ``JobCancelled``)."""
    promoted: list[str] = Field(default_factory=list)
    """Waiting jobs this job's end sent to the tier topic, to send again if the end is seen
    again (the first sending may be what a crash lost)."""


class Account(BaseModel):
    model_config = ConfigDict(extra="forbid")

    balance: int = 0
    """Credits available to spend."""
    plan: Plan = Plan.FREE
    holds: dict[str, Hold] = Field(default_factory=dict)
    """Open jobs by id."""
    closed: dict[str, Closed] = Field(default_factory=dict)
    """Recently finished or rejected jobs and how they ended (insertion ordered, bounded)."""
    idempotency: dict[str, str] = Field(default_factory=dict)
    """Recent idempotency keys and the job each one made."""
    ledger_keys: dict[str, bool] = Field(default_factory=dict)
    """Recent grant and purchase idempotency keys already counted."""
    started_promoted: dict[str, list[str]] = Field(default_factory=dict)
    """Waiting jobs sent to the tier topic when a job started, by the started job (bounded)."""
    usage_month: str = ""
    month_video_minutes: int = 0
    lifetime_videos: int = 0

    @property
    def held(self) -> int:
        return sum(hold.amount for hold in self.holds.values())


Outcome = tuple[Account, list[Event]]


class CreditsOwedError(Exception):
    """A request that credits cannot pay for yet, from an account that has seen no credit:
    its sign-up grant may still be on its way (``stream_processors.credit_wait``)."""


def _remember(mapping: dict[str, Any], key: str, value: Any) -> None:
    mapping[key] = value
    while len(mapping) > RECENT_LIMIT:
        del mapping[next(iter(mapping))]


def _month(at: datetime) -> str:
    return at.strftime("%Y-%m")


def billable_quantity(request: JobRequested) -> float:
    """How much of its price unit a job uses: seconds, minutes, characters, or one job."""
    job_input = request.input
    match request.job_type:
        case JobType.VIDEO_GENERATE:
            return float(getattr(job_input, "duration_s", 1))
        case JobType.VIDEO_ENHANCE:
            duration = request.media.duration_s if request.media else None
            return (duration or 0.0) / 60
        case JobType.AUDIO_SPEECH:
            return float(len(getattr(job_input, "text", "")))
    return 1.0


def _video_seconds(request: JobRequested) -> float:
    if request.job_type is JobType.VIDEO_GENERATE:
        return float(getattr(request.input, "duration_s", 0))
    if request.media and request.media.duration_s:
        return request.media.duration_s
    return 0.0


def _video_height(request: JobRequested) -> int:
    if request.job_type is JobType.VIDEO_GENERATE:
        return int(getattr(request.input, "height", 0))
    height = request.media.height if request.media and request.media.height else 0
    return height * int(getattr(request.input, "scale", 1))


def _plan_refusal(account: Account, request: JobRequested, catalog: Catalog) -> str | None:
    limits = catalog.limits(account.plan)
    if request.job_type not in VIDEO_TYPES:
        return None
    seconds = _video_seconds(request)
    if seconds > limits.max_video_duration_s:
        return f"{account.plan.value} videos are limited to {limits.max_video_duration_s} s"
    if _video_height(request) > limits.max_video_height:
        return f"{account.plan.value} videos are limited to {limits.max_video_height}p"
    if limits.lifetime_videos is not None and account.lifetime_videos >= limits.lifetime_videos:
        return f"the {account.plan.value} plan includes {limits.lifetime_videos} video(s) in total"
    minutes = math.ceil(seconds / 60)
    monthly = limits.monthly_video_minutes
    if monthly is not None and account.month_video_minutes + minutes > monthly:
        return f"the {account.plan.value} plan includes {monthly} video minutes a month"
    return None


def _acceptance(job_id: str, reserved: Reservation) -> list[Event]:
    """The events of an acceptance; rebuilt identically whenever they must be written again."""
    return [
        JobAccepted(
            job_id=job_id,
            job_type=reserved.job_type,
            tier=reserved.tier,
            credits_reserved=reserved.amount,
        ),
        CreditsReserved(job_id=job_id, amount=reserved.amount, idempotency_key=f"reserve:{job_id}"),
    ]


def _dispatch(job_id: str, hold: Hold) -> list[Event]:
    """The acceptance of a job still open and its dispatch: a finished job is never queued again."""
    return [*_acceptance(job_id, hold), _queued(job_id, hold)]


def _closing(job_id: str, closed: Closed) -> list[Event]:
    """The events that closed a job, rebuilt identically for redelivered causes."""
    if closed.how == "rejected":
        return [
            JobRejected(job_id=job_id, reason=RejectReason(closed.reason), detail=closed.detail)
        ]
    hold = closed.accepted
    if hold is None:
        return []
    if closed.how == "completed":
        return [
            CreditsSettled(
                job_id=job_id, amount=hold.amount, released=0, idempotency_key=f"settle:{job_id}"
            )
        ]
    events: list[Event] = []
    if closed.cancelled_here:
        events.append(JobCancelled(job_id=job_id, reason=closed.detail or "cancelled"))
    events.append(
        CreditsReleased(
            job_id=job_id,
            amount=hold.amount,
            reason=closed.reason,
            idempotency_key=f"release:{job_id}",
        )
    )
    return events


def _replay_request(account: Account, job_id: str) -> list[Event]:
    """What a request already decided: its events again (same ids downstream), no new effect.

    Rebuilt from what was decided, not from the request at hand, so that a different request
    reusing the id cannot change them.
    """
    hold = account.holds.get(job_id)
    if hold is not None:
        return _acceptance(job_id, hold) if hold.status == "waiting" else _dispatch(job_id, hold)
    closed = account.closed[job_id]
    if closed.accepted is None:
        return _closing(job_id, closed)
    return _acceptance(job_id, closed.accepted) + _closing(job_id, closed)


def _queued(job_id: str, hold: Hold) -> JobQueued:
    return JobQueued(
        job_id=job_id,
        job_type=hold.job_type,
        tier=hold.tier,
        input=hold.input,
        attempt=1,
        topic=tier_topic(hold.job_type, hold.tier),
        webhook_url=hold.webhook_url,
        deadline=hold.deadline,
    )


def _take_turns(account: Account, catalog: Catalog) -> list[str]:
    """Sends the user's oldest waiting jobs to the tier topic while the plan allows: at most
    ``max_concurrent_jobs`` queued or running, at most ``dispatch_window`` of them queued.
    Returns their ids (in the order they were requested)."""
    limits = catalog.limits(account.plan)
    queued = running = 0
    waiting: list[str] = []
    for job_id, hold in account.holds.items():
        if hold.status == "queued":
            queued += 1
        elif hold.status == "running":
            running += 1
        else:
            waiting.append(job_id)
    turns = min(
        len(waiting),
        limits.dispatch_window - queued,
        limits.max_concurrent_jobs - queued - running,
    )
    promoted = waiting[: max(0, turns)]
    for job_id in promoted:
        # A new hold, not the one changed in place: the caller's account shares it.
        account.holds[job_id] = account.holds[job_id].model_copy(update={"status": "queued"})
    return promoted


def _dispatched(account: Account, job_ids: list[str]) -> list[Event]:
    """The dispatch of those of ``job_ids`` on the tier topic and not started: a started job
    has had its dispatch, and one sent again could run twice."""
    return [
        _queued(job_id, hold)
        for job_id in job_ids
        if (hold := account.holds.get(job_id)) is not None and hold.status == "queued"
    ]


def request_job(
    account: Account,
    request: JobRequested,
    catalog: Catalog,
    *,
    may_wait: bool = False,
    trace: str | None = None,
) -> Outcome:
    """Accepts (reserving credits and usage) or rejects a job. An accepted job goes to the
    tier topic when the user's turn allows (``_take_turns``), else it waits, in order.

    With ``may_wait``, a job that an account without any credit yet cannot pay for raises
    ``CreditsOwedError`` instead of being rejected.
    """
    job_id = request.job_id
    if job_id in account.holds or job_id in account.closed:
        return account, _replay_request(account, job_id)
    key = request.idempotency_key
    if key is not None and account.idempotency.get(key, job_id) != job_id:
        first = account.idempotency[key]
        detail = f"idempotency key already used by {first}"
        return _reject(account, job_id, RejectReason.INVALID_INPUT, detail)
    if key is not None:
        _remember(account.idempotency, key, job_id)

    if _month(request.requested_at) != account.usage_month:
        account.usage_month = _month(request.requested_at)
        account.month_video_minutes = 0
    limits = catalog.limits(account.plan)
    waiting = sum(1 for hold in account.holds.values() if hold.status == "waiting")
    if waiting >= limits.max_waiting_jobs:
        detail = (
            f"at most {limits.max_waiting_jobs} jobs may wait on the {account.plan.value} plan,"
            f" besides {limits.max_concurrent_jobs} queued or running"
        )
        return _reject(account, job_id, RejectReason.QUEUE_FULL, detail)
    refusal = _plan_refusal(account, request, catalog)
    if refusal is not None:
        return _reject(account, job_id, RejectReason.PLAN_LIMIT, refusal)
    price = catalog.price(request.job_type).of(billable_quantity(request))
    if price > account.balance:
        if may_wait and not account.ledger_keys:
            raise CreditsOwedError(job_id)
        detail = f"the job costs {price} credits; {account.balance} are available"
        return _reject(account, job_id, RejectReason.INSUFFICIENT_CREDITS, detail)

    is_video = request.job_type in VIDEO_TYPES
    minutes = math.ceil(_video_seconds(request) / 60) if is_video else 0
    hold = Hold(
        amount=price,
        requested_at=request.requested_at,
        job_type=request.job_type,
        input=request.input,
        webhook_url=request.webhook_url,
        tier=limits.tier,
        deadline=request.requested_at + timedelta(seconds=limits.queue_ttl_s),
        video_minutes=minutes,
        counts_as_video=is_video,
        status="waiting",
        trace=trace,
    )
    account.balance -= price
    account.holds[job_id] = hold
    account.month_video_minutes += minutes
    account.lifetime_videos += int(is_video)
    caused = _acceptance(job_id, hold)
    # Jobs already waiting are older: they take their turns first.
    return account, caused + _dispatched(account, _take_turns(account, catalog))


def _reject(account: Account, job_id: str, reason: RejectReason, detail: str) -> Outcome:
    closed = Closed(how="rejected", reason=reason.value, detail=detail[:500])
    _remember(account.closed, job_id, closed)
    return account, _closing(job_id, closed)


def _close(
    account: Account,
    job_id: str,
    how: Literal["completed", "failed", "cancelled", "expired"],
    *,
    reason: str = "",
    cancelled_here: bool = False,
    detail: str = "",
) -> list[Event]:
    """Ends an open job once; a job already ended writes its closing events again."""
    if job_id in account.closed:
        return _closing(job_id, account.closed[job_id])
    hold = account.holds.pop(job_id, None)
    if hold is None:
        return []
    # Only what writing the acceptance again needs: closed jobs are most of a stored state.
    accepted = Reservation(amount=hold.amount, job_type=hold.job_type, tier=hold.tier)
    closed = Closed(
        how=how,
        reason=reason,
        detail=detail[:500],
        accepted=accepted,
        cancelled_here=cancelled_here,
    )
    _remember(account.closed, job_id, closed)
    if how != "completed":
        account.balance += hold.amount
        account.month_video_minutes = max(0, account.month_video_minutes - hold.video_minutes)
        account.lifetime_videos = max(0, account.lifetime_videos - int(hold.counts_as_video))
    return _closing(job_id, closed)


def job_started(account: Account, event: JobStarted) -> Outcome:
    hold = account.holds.get(event.job_id)
    if hold is not None and hold.status != "running":
        # A new hold, not the one changed in place: the caller's account shares it.
        account.holds[event.job_id] = hold.model_copy(update={"status": "running"})
    return account, []


def job_completed(account: Account, event: JobCompleted) -> Outcome:
    return account, _close(account, event.job_id, "completed")


def job_failed(account: Account, event: JobFailed) -> Outcome:
    return account, _close(account, event.job_id, "failed", reason=f"failed: {event.error_code}")


def job_cancelled(account: Account, event: JobCancelled) -> Outcome:
    closed = account.closed.get(event.job_id)
    if closed is not None and closed.cancelled_here:
        # Our own cancellation coming back through the lifecycle: nothing new, nothing again.
        return account, []
    return account, _close(account, event.job_id, "cancelled", reason="cancelled")


def job_expired(account: Account, event: JobExpired) -> Outcome:
    return account, _close(account, event.job_id, "expired", reason="expired")


def cancel_requested(account: Account, event: JobCancelRequested) -> Outcome:
    """A queued job is cancelled here; a running one is left to its worker, which stops it."""
    closed = account.closed.get(event.job_id)
    if closed is not None:
        return account, _closing(event.job_id, closed) if closed.cancelled_here else []
    hold = account.holds.get(event.job_id)
    if hold is None or hold.status == "running":
        return account, []
    detail = event.reason or "cancelled by the user"
    caused = _close(
        account, event.job_id, "cancelled", reason="cancelled", cancelled_here=True, detail=detail
    )
    return account, caused


def credits_added(account: Account, event: CreditsGranted | CreditsPurchased) -> Outcome:
    if event.idempotency_key in account.ledger_keys:
        return account, []
    _remember(account.ledger_keys, event.idempotency_key, True)
    account.balance += event.amount
    return account, []


def plan_changed(account: Account, event: PlanChanged) -> Outcome:
    account.plan = event.plan
    return account, []


def overdue(account: Account, now: datetime) -> list[JobExpired]:
    """Queued jobs of ``account`` whose plan's deadline has passed, as expiries to write.

    The expiry goes out through the lifecycle and comes back as an outcome, which releases
    the hold: one path for expiries found here and for those a worker finds first. A job
    already running is not expired here; its execution timeout governs it.
    """
    return [
        JobExpired(job_id=job_id, reason=EXPIRED_REASON, deadline=hold.deadline)
        for job_id, hold in account.holds.items()
        if hold.status != "running" and hold.deadline <= now
    ]


def _copy(account: Account) -> Account:
    """A copy that the operations may change without changing ``account``.

    They change the account's fields and collections but never a hold or closed job in
    place, so those are shared: copying them deeply costs as much as the whole state.
    """
    return account.model_copy(
        update={
            "holds": dict(account.holds),
            "closed": dict(account.closed),
            "idempotency": dict(account.idempotency),
            "ledger_keys": dict(account.ledger_keys),
            "started_promoted": dict(account.started_promoted),
        }
    )


def _turns_after(account: Account, event: Event, catalog: Catalog) -> list[Event]:
    """The turns a job's start or end gives the user's waiting jobs, and those it gave before.

    What a start or an end sent to the tier topic is recorded with it, so that the same
    input seen again sends it again (readers drop the repeats by event id): a crash may have
    lost the first sending.
    """
    match event:
        case JobStarted():
            job_id = event.job_id
            before = account.started_promoted.get(job_id, [])
            promoted = _take_turns(account, catalog)
            if promoted:
                _remember(account.started_promoted, job_id, before + promoted)
        case JobCompleted() | JobFailed() | JobCancelled() | JobExpired() | JobCancelRequested():
            job_id = event.job_id
            closed = account.closed.get(job_id)
            if closed is None:
                return []
            if isinstance(event, JobCancelled) and closed.cancelled_here:
                return []  # our own cancellation coming back: its turns were taken then
            before = closed.promoted
            promoted = _take_turns(account, catalog)
            if promoted:
                account.closed[job_id] = closed.model_copy(update={"promoted": before + promoted})
        case _:
            return []
    return _dispatched(account, before + promoted)


def apply(
    account: Account,
    event: Event,
    catalog: Catalog,
    *,
    may_wait: bool = False,
    trace: str | None = None,
) -> Outcome:
    """Routes one event to its operation on a copy of ``account``; the input stays as it was.

    Events that concern no account change nothing. An event seen before changes nothing
    either, but writes the events it caused the first time again, identical, so that output
    lost in a crash is not lost for good (readers drop the repeats by event id).
    ``may_wait`` lets a request raise ``CreditsOwedError`` (see ``request_job``); ``trace``
    is the request's, kept for its dispatch.
    """
    account, caused = _route(_copy(account), event, catalog, may_wait=may_wait, trace=trace)
    return account, caused + _turns_after(account, event, catalog)


def _route(
    account: Account, event: Event, catalog: Catalog, *, may_wait: bool, trace: str | None
) -> Outcome:
    match event:
        case JobRequested():
            return request_job(account, event, catalog, may_wait=may_wait, trace=trace)
        case JobCancelRequested():
            return cancel_requested(account, event)
        case JobStarted():
            return job_started(account, event)
        case JobCompleted():
            return job_completed(account, event)
        case JobFailed():
            return job_failed(account, event)
        case JobCancelled():
            return job_cancelled(account, event)
        case JobExpired():
            return job_expired(account, event)
        case CreditsGranted() | CreditsPurchased():
            return credits_added(account, event)
        case PlanChanged():
            return plan_changed(account, event)
    return account, []
