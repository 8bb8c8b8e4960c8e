from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.projection.ledger import movement
from contracts import (
    CreditsGranted,
    CreditsPurchased,
    CreditsReleased,
    CreditsReserved,
    CreditsSettled,
    JobStarted,
)


def test_each_kind_moves_available_and_reserved_credits() -> None:
    assert (
        movement(CreditsGranted(amount=100, reason="signup", idempotency_key="k1")).available == 100
    )
    purchase = movement(CreditsPurchased(amount=50, payment_id="cs_1", idempotency_key="k2"))
    assert (purchase.kind, purchase.available, purchase.reserved) == ("purchased", 50, 0)
    hold = movement(CreditsReserved(job_id="j", amount=8, idempotency_key="k3"))
    assert (hold.available, hold.reserved, hold.job_id) == (-8, 8, "j")
    settle = movement(CreditsSettled(job_id="j", amount=6, released=2, idempotency_key="k4"))
    assert (settle.available, settle.reserved) == (2, -8)
    release = movement(CreditsReleased(job_id="j", amount=8, reason="failed", idempotency_key="k5"))
    assert (release.available, release.reserved) == (8, -8)


def test_other_events_are_not_ledger_movements() -> None:
    with pytest.raises(TypeError):
        movement(JobStarted(job_id="j", worker_id="w", attempt=1))


@given(
    grant=st.integers(min_value=1, max_value=10_000),
    price=st.integers(min_value=0, max_value=10_000),
    charged=st.integers(min_value=0, max_value=10_000),
    settles=st.booleans(),
)
def test_a_job_ends_with_nothing_held(grant: int, price: int, charged: int, settles: bool) -> None:
    charged = min(charged, price)
    events = [
        CreditsGranted(amount=grant, reason="signup", idempotency_key="g"),
        CreditsReserved(job_id="j", amount=price, idempotency_key="r"),
        CreditsSettled(job_id="j", amount=charged, released=price - charged, idempotency_key="s")
        if settles
        else CreditsReleased(job_id="j", amount=price, reason="failed", idempotency_key="x"),
    ]
    moves = [movement(event) for event in events]
    assert sum(move.reserved for move in moves) == 0
    spent = charged if settles else 0
    assert sum(move.available for move in moves) == grant - spent


def test_the_first_copy_of_an_event_is_the_one_kept() -> None:
    from datetime import timedelta

    from api.projection.ledger import first_copies
    from contracts import CreditsGranted, Envelope

    grant = CreditsGranted(amount=5, reason="signup", idempotency_key="k")
    first = Envelope.wrap(grant, user_id="u", source="s", event_id="e-1")
    again = first.model_copy(update={"time": first.time + timedelta(seconds=30)})
    other = Envelope.wrap(grant, user_id="u", source="s", event_id="e-2")
    assert first_copies([first, other, again]) == [first, other]
