"""How many event streams each user and each API key holds open in this process.

A stream takes a slot of its user and, when it came with an API key, of the key, and gives
them back when it closes. Past either cap the stream is refused: open streams cost this
process memory and a share of its stream reads, and one caller must not take them all.

The counts are this process's only: with several API processes behind a balancer, a user
may hold up to the cap on each.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from api.events.metrics import REFUSED
from api.problems import Problem

__all__ = ["Refusal", "Slot", "StreamSlots", "refused"]


class Slot:
    """One open stream's place; ``release`` gives it back (again is a no-op)."""

    __slots__ = ("_api_key_id", "_owner", "_user_id")

    def __init__(self, owner: StreamSlots, user_id: str, api_key_id: str | None) -> None:
        self._owner: StreamSlots | None = owner
        self._user_id = user_id
        self._api_key_id = api_key_id

    def release(self) -> None:
        owner, self._owner = self._owner, None
        if owner is not None:
            owner._give_back(self._user_id, self._api_key_id)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a stream got no slot: whose cap is full, and what it is."""

    whose: str
    """``"user"`` or ``"api_key"``."""
    cap: int


class StreamSlots:
    def __init__(self, *, per_user: int, per_api_key: int) -> None:
        self._per_user = per_user
        self._per_api_key = per_api_key
        self._users: Counter[str] = Counter()
        self._keys: Counter[str] = Counter()

    def check(self, *, user_id: str, api_key_id: str | None = None) -> Refusal | None:
        """Why one more stream of the user (and key) would be refused now; ``None`` if not."""
        if self._users[user_id] >= self._per_user:
            return Refusal("user", self._per_user)
        if api_key_id is not None and self._keys[api_key_id] >= self._per_api_key:
            return Refusal("api_key", self._per_api_key)
        return None

    def take(self, *, user_id: str, api_key_id: str | None) -> Slot | Refusal:
        """A slot for one more stream of the user (and key), or why there is none."""
        refusal = self.check(user_id=user_id, api_key_id=api_key_id)
        if refusal is not None:
            return refusal
        self._users[user_id] += 1
        if api_key_id is not None:
            self._keys[api_key_id] += 1
        return Slot(self, user_id, api_key_id)

    def open_streams(self, *, user_id: str) -> int:
        return self._users[user_id]

    def _give_back(self, user_id: str, api_key_id: str | None) -> None:
        _decrement(self._users, user_id)
        if api_key_id is not None:
            _decrement(self._keys, api_key_id)


def refused(refusal: Refusal, *, retry_after_s: int) -> Problem:
    """The 429 of a stream refused (counted in the metrics)."""
    REFUSED.labels(refusal.whose).inc()
    whose = "user" if refusal.whose == "user" else "API key"
    return Problem(
        429,
        f"at most {refusal.cap} event streams may be open at once per {whose}; "
        "close one before opening another",
        type_="too_many_streams",
        headers={"Retry-After": str(retry_after_s)},
    )


def _decrement(counts: Counter[str], key: str) -> None:
    # Gone at zero, so the counters hold only callers with streams open.
    if counts[key] <= 1:
        counts.pop(key, None)
    else:
        counts[key] -= 1
