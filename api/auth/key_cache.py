"""API keys verified recently, remembered for a few seconds so that busy keys skip the database.

Each API process keeps its own cache. A revocation (or a change of the owner's plan) is
announced to every process when it commits (``api.auth.key_revocations``), and each drops
the entries it names. An entry also lives at most ``ttl_s`` from the lookup that made it,
which bounds how long a change made where nobody announces it (straight in the database,
or while a process's listener is cut off) goes unseen. Only keys the database accepted
are remembered: refusals always ask it again, so unknown keys cannot fill the cache.

Requests that find the same key missing at the same moment share one lookup: when a busy
key's entry expires, the database sees one query, not one per request in flight. A key used
in the last fifth of its entry's life is looked up again in the background while the
request goes on with the entry, so a key in steady use never makes a request wait for the
database; a background lookup that finds the key no longer valid drops its entry.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

__all__ = ["ApiKeyCache", "KeyOwner"]

_REFRESH_SHARE: Final = 0.2
"""The last part of an entry's life in which a use looks the key up again, in the background."""


@dataclass(frozen=True, slots=True)
class KeyOwner:
    """What a request needs of a verified key: whose it is and that user's plan."""

    user_id: uuid.UUID
    plan: str
    api_key_id: uuid.UUID
    daily_credit_cap: int | None = None
    """Set when the key was made and never changed after, so it is safe to keep here."""


class ApiKeyCache:
    """Verified keys by digest, each for ``ttl_s`` seconds, at most ``max_entries`` of them.

    ``ttl_s == 0`` turns it off. ``clock`` is monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        *,
        ttl_s: float,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        # Insertion order is expiry order: every entry lives the same ttl_s from its put.
        self._entries: OrderedDict[str, tuple[float, KeyOwner]] = OrderedDict()
        self._lookups: dict[str, asyncio.Task[KeyOwner | None]] = {}
        self._forgotten = 0
        """Counts ``forget_*`` calls: a lookup that overlapped one does not store its answer."""

    @property
    def ttl_s(self) -> float:
        return self._ttl_s

    async def owner(
        self, key_digest: str, lookup: Callable[[], Awaitable[KeyOwner | None]]
    ) -> KeyOwner | None:
        """The key's owner from the cache, or from ``lookup`` (``None``: not a valid key)."""
        entry = self._alive(key_digest)
        if entry is not None:
            expires_at, cached = entry
            if self._clock() >= expires_at - self._ttl_s * _REFRESH_SHARE:
                self._lookup_task(key_digest, lookup).add_done_callback(_consume_error)
            return cached
        # Shielded: a caller that goes away must not cancel the lookup the others wait for.
        return await asyncio.shield(self._lookup_task(key_digest, lookup))

    def _lookup_task(
        self, key_digest: str, lookup: Callable[[], Awaitable[KeyOwner | None]]
    ) -> asyncio.Task[KeyOwner | None]:
        """The lookup of ``key_digest`` under way, or a new one."""
        task = self._lookups.get(key_digest)
        if task is None:
            task = asyncio.ensure_future(self._look_up(key_digest, lookup, self._forgotten))
            self._lookups[key_digest] = task
        return task

    async def _look_up(
        self, key_digest: str, lookup: Callable[[], Awaitable[KeyOwner | None]], forgotten: int
    ) -> KeyOwner | None:
        try:
            found = await lookup()
        finally:
            del self._lookups[key_digest]
        if forgotten == self._forgotten:
            if found is not None:
                self.put(key_digest, found)
            else:
                self._entries.pop(key_digest, None)
        return found

    def get(self, key_digest: str) -> KeyOwner | None:
        entry = self._alive(key_digest)
        return None if entry is None else entry[1]

    def _alive(self, key_digest: str) -> tuple[float, KeyOwner] | None:
        """The key's entry (its expiry and owner) unless it has expired, which drops it."""
        entry = self._entries.get(key_digest)
        if entry is not None and self._clock() >= entry[0]:
            del self._entries[key_digest]
            return None
        return entry

    def put(self, key_digest: str, owner: KeyOwner) -> None:
        if self._ttl_s <= 0:
            return
        now = self._clock()
        self._entries.pop(key_digest, None)
        self._entries[key_digest] = (now + self._ttl_s, owner)
        self._evict(now)

    def forget_key(self, api_key_id: uuid.UUID) -> None:
        """Drops a revoked key."""
        self._forgotten += 1
        for key_digest in [d for d, (_, o) in self._entries.items() if o.api_key_id == api_key_id]:
            del self._entries[key_digest]

    def forget_user(self, user_id: uuid.UUID) -> None:
        """Drops every key of a user whose account changed (its plan, for instance)."""
        self._forgotten += 1
        for key_digest in [d for d, (_, o) in self._entries.items() if o.user_id == user_id]:
            del self._entries[key_digest]

    def forget_all(self) -> None:
        """Drops every entry: for when announcements may have been missed."""
        self._forgotten += 1
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def _evict(self, now: float) -> None:
        while self._entries:
            oldest_digest, (expires_at, _) = next(iter(self._entries.items()))
            if expires_at > now and len(self._entries) <= self._max_entries:
                return
            del self._entries[oldest_digest]


def _consume_error(task: asyncio.Task[KeyOwner | None]) -> None:
    # A background lookup that failed (the database away) leaves the entry to its expiry;
    # its error is taken here so that nobody is told it was never retrieved.
    if not task.cancelled():
        task.exception()
