"""The bookkeeping of open streams: caps per user and per API key, and slots given back."""

from __future__ import annotations

from api.events.slots import Refusal, Slot, StreamSlots


def _taken(slots: StreamSlots, user_id: str, api_key_id: str | None = None) -> Slot:
    slot = slots.take(user_id=user_id, api_key_id=api_key_id)
    assert isinstance(slot, Slot), slot
    return slot


def test_a_user_past_their_cap_is_refused_and_others_are_not() -> None:
    slots = StreamSlots(per_user=3, per_api_key=10)
    held = [_taken(slots, "u1") for _ in range(3)]
    assert slots.take(user_id="u1", api_key_id=None) == Refusal("user", 3)
    assert slots.take(user_id="u1", api_key_id="k1") == Refusal("user", 3)
    _taken(slots, "u2")
    assert slots.open_streams(user_id="u1") == 3
    held[0].release()
    _taken(slots, "u1")
    assert slots.take(user_id="u1", api_key_id=None) == Refusal("user", 3)


def test_an_api_key_past_its_cap_is_refused_within_its_users_cap() -> None:
    slots = StreamSlots(per_user=5, per_api_key=2)
    first, _ = _taken(slots, "u1", "k1"), _taken(slots, "u1", "k1")
    assert slots.take(user_id="u1", api_key_id="k1") == Refusal("api_key", 2)
    # The user's other key and their access tokens still have room.
    _taken(slots, "u1", "k2")
    _taken(slots, "u1")
    assert slots.open_streams(user_id="u1") == 4
    first.release()
    _taken(slots, "u1", "k1")
    _taken(slots, "u1", "k2")
    assert slots.open_streams(user_id="u1") == 5
    assert slots.take(user_id="u1", api_key_id="k3") == Refusal("user", 5)


def test_a_slot_given_back_twice_counts_once() -> None:
    slots = StreamSlots(per_user=2, per_api_key=2)
    slot = _taken(slots, "u1", "k1")
    other = _taken(slots, "u1", "k1")
    slot.release()
    slot.release()
    assert slots.open_streams(user_id="u1") == 1
    _taken(slots, "u1", "k1")
    assert slots.take(user_id="u1", api_key_id="k1") == Refusal("user", 2)
    other.release()
    assert slots.open_streams(user_id="u1") == 1


def test_every_slot_given_back_leaves_nothing_behind() -> None:
    slots = StreamSlots(per_user=10, per_api_key=10)
    held = [_taken(slots, f"u{n % 3}", f"k{n % 2}") for n in range(12)]
    for slot in held:
        slot.release()
    assert all(slots.open_streams(user_id=f"u{n}") == 0 for n in range(3))
    assert slots._users == {}
    assert slots._keys == {}
