"""The API key cache: entries live their TTL and no longer, revocations here act at once."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from api.auth.key_cache import ApiKeyCache, KeyOwner


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _owner(user_id: uuid.UUID | None = None) -> KeyOwner:
    return KeyOwner(user_id=user_id or uuid.uuid4(), plan="PRO", api_key_id=uuid.uuid4())


def test_an_entry_lives_exactly_its_ttl() -> None:
    clock = Clock()
    cache = ApiKeyCache(ttl_s=5.0, max_entries=10, clock=clock)
    owner = _owner()
    cache.put("d", owner)

    clock.now += 4.999
    assert cache.get("d") == owner
    clock.now += 0.001
    assert cache.get("d") is None
    assert len(cache) == 0


def test_a_zero_ttl_remembers_nothing() -> None:
    cache = ApiKeyCache(ttl_s=0, max_entries=10, clock=Clock())
    cache.put("d", _owner())
    assert cache.get("d") is None


def test_forgetting_a_key_or_a_user_drops_their_entries() -> None:
    cache = ApiKeyCache(ttl_s=5.0, max_entries=10, clock=Clock())
    alice = uuid.uuid4()
    first, second, other = _owner(alice), _owner(alice), _owner()
    cache.put("first", first)
    cache.put("second", second)
    cache.put("other", other)

    cache.forget_key(first.api_key_id)
    assert (cache.get("first"), cache.get("second")) == (None, second)
    cache.forget_user(alice)
    assert (cache.get("second"), cache.get("other")) == (None, other)


def test_the_oldest_entries_go_first_past_the_size() -> None:
    clock = Clock()
    cache = ApiKeyCache(ttl_s=5.0, max_entries=2, clock=clock)
    for name in ("a", "b", "c"):
        cache.put(name, _owner())
        clock.now += 1
    assert len(cache) == 2
    assert cache.get("a") is None
    assert cache.get("b") is not None
    assert cache.get("c") is not None


async def test_concurrent_misses_share_one_lookup() -> None:
    cache = ApiKeyCache(ttl_s=5.0, max_entries=10, clock=Clock())
    owner = _owner()
    lookups = 0
    release = asyncio.Event()

    async def lookup() -> KeyOwner | None:
        nonlocal lookups
        lookups += 1
        await release.wait()
        return owner

    waiting = [asyncio.create_task(cache.owner("d", lookup)) for _ in range(20)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiting) == [owner] * 20
    assert lookups == 1
    assert await cache.owner("d", lookup) == owner
    assert lookups == 1


async def test_refusals_are_not_remembered() -> None:
    cache = ApiKeyCache(ttl_s=5.0, max_entries=10, clock=Clock())
    lookups = 0

    async def lookup() -> KeyOwner | None:
        nonlocal lookups
        lookups += 1
        return None

    assert await cache.owner("d", lookup) is None
    assert await cache.owner("d", lookup) is None
    assert (lookups, len(cache)) == (2, 0)


async def test_a_lookup_that_overlaps_a_revocation_is_not_stored() -> None:
    cache = ApiKeyCache(ttl_s=5.0, max_entries=10, clock=Clock())
    owner = _owner()
    release = asyncio.Event()

    async def lookup() -> KeyOwner | None:
        await release.wait()
        return owner

    pending = asyncio.create_task(cache.owner("d", lookup))
    await asyncio.sleep(0)
    cache.forget_key(owner.api_key_id)
    release.set()
    assert await pending == owner
    assert cache.get("d") is None


async def test_a_failed_lookup_fails_its_waiters_and_is_not_kept() -> None:
    cache = ApiKeyCache(ttl_s=5.0, max_entries=10, clock=Clock())

    async def broken() -> KeyOwner | None:
        raise ConnectionError("database gone")

    with pytest.raises(ConnectionError):
        await cache.owner("d", broken)
    owner = _owner()

    async def working() -> KeyOwner | None:
        return owner

    assert await cache.owner("d", working) == owner


async def _settled(cache: ApiKeyCache, digest: str) -> None:
    """Waits for the lookup of ``digest`` under way, if any, whatever its outcome."""
    task = cache._lookups.get(digest)
    if task is not None:
        await asyncio.gather(task, return_exceptions=True)


async def test_a_key_used_late_in_its_entry_is_refreshed_behind_the_request() -> None:
    clock = Clock()
    cache = ApiKeyCache(ttl_s=10.0, max_entries=10, clock=clock)
    owner, newer = _owner(), _owner()
    lookups: list[str] = []

    async def lookup() -> KeyOwner | None:
        lookups.append("d")
        return newer

    cache.put("d", owner)
    clock.now += 7.9  # before the last fifth: no lookup
    assert await cache.owner("d", lookup) == owner
    await _settled(cache, "d")
    assert lookups == []

    clock.now += 0.2  # in the last fifth: answered from the entry, looked up behind it
    assert await cache.owner("d", lookup) == owner
    await _settled(cache, "d")
    assert lookups == ["d"]
    clock.now += 9.9  # the refreshed entry lives its whole TTL from the lookup
    assert cache.get("d") == newer


async def test_a_refresh_that_finds_the_key_gone_drops_its_entry() -> None:
    clock = Clock()
    cache = ApiKeyCache(ttl_s=10.0, max_entries=10, clock=clock)
    cache.put("d", _owner())

    async def revoked() -> KeyOwner | None:
        return None

    clock.now += 9.0
    assert await cache.owner("d", revoked) is not None
    await _settled(cache, "d")
    assert cache.get("d") is None
    assert await cache.owner("d", revoked) is None


async def test_a_failed_refresh_keeps_the_entry_to_its_expiry() -> None:
    clock = Clock()
    cache = ApiKeyCache(ttl_s=10.0, max_entries=10, clock=clock)
    owner = _owner()
    cache.put("d", owner)

    async def broken() -> KeyOwner | None:
        raise ConnectionError("database gone")

    clock.now += 9.0
    assert await cache.owner("d", broken) == owner
    await _settled(cache, "d")
    assert cache.get("d") == owner
    clock.now += 1.0
    assert cache.get("d") is None
