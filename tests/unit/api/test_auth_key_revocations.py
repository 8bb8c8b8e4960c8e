"""Announcements of stale API keys: each names what to drop, and anything else drops all."""

from __future__ import annotations

import uuid

import pytest

from api.auth.key_cache import ApiKeyCache, KeyOwner
from api.auth.key_revocations import apply_notification


def _filled() -> tuple[ApiKeyCache, KeyOwner, KeyOwner, KeyOwner]:
    cache = ApiKeyCache(ttl_s=60.0, max_entries=10)
    alice = uuid.uuid4()
    first = KeyOwner(user_id=alice, plan="PRO", api_key_id=uuid.uuid4())
    second = KeyOwner(user_id=alice, plan="PRO", api_key_id=uuid.uuid4())
    other = KeyOwner(user_id=uuid.uuid4(), plan="FREE", api_key_id=uuid.uuid4())
    for digest, owner in (("first", first), ("second", second), ("other", other)):
        cache.put(digest, owner)
    return cache, first, second, other


def test_a_key_announcement_drops_that_key_only() -> None:
    cache, first, second, other = _filled()
    apply_notification(cache, f"key:{first.api_key_id}")
    assert [cache.get(d) for d in ("first", "second", "other")] == [None, second, other]


def test_a_user_announcement_drops_every_key_of_the_user() -> None:
    cache, first, _, other = _filled()
    apply_notification(cache, f"user:{first.user_id}")
    assert [cache.get(d) for d in ("first", "second", "other")] == [None, None, other]


@pytest.mark.parametrize("payload", ["", "key:", "key:not-a-uuid", f"plan:{uuid.uuid4()}", "x"])
def test_an_unreadable_announcement_drops_everything(payload: str) -> None:
    cache, *_ = _filled()
    apply_notification(cache, payload)
    assert len(cache) == 0


async def test_a_lookup_that_overlaps_dropping_everything_is_not_stored() -> None:
    cache = ApiKeyCache(ttl_s=60.0, max_entries=10)
    owner = KeyOwner(user_id=uuid.uuid4(), plan="PRO", api_key_id=uuid.uuid4())

    async def lookup() -> KeyOwner:
        cache.forget_all()
        return owner

    assert await cache.owner("d", lookup) == owner
    assert cache.get("d") is None
