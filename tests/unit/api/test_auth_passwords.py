"""Argon2id password hashing."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.profiles import RFC_9106_LOW_MEMORY

from api.auth.passwords import DUMMY_HASH, hash_password, verify_password


async def test_hash_is_argon2id_and_verifies() -> None:
    stored = await hash_password("correct horse battery staple")
    assert stored.startswith("$argon2id$")
    assert await verify_password(stored, "correct horse battery staple") == (True, None)


async def test_wrong_password_fails() -> None:
    stored = await hash_password("correct horse battery staple")
    assert await verify_password(stored, "Correct horse battery staple") == (False, None)


async def test_hashes_are_salted() -> None:
    assert await hash_password("same password") != await hash_password("same password")


async def test_missing_hash_fails_against_the_dummy() -> None:
    assert await verify_password(None, "any password") == (False, None)


async def test_garbage_hash_fails_instead_of_raising() -> None:
    assert await verify_password("not a hash", "any password") == (False, None)


async def test_outdated_parameters_are_rehashed_on_success() -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash("a password")
    matches, rehashed = await verify_password(weak, "a password")
    assert matches
    assert rehashed is not None
    assert rehashed != weak
    assert await verify_password(rehashed, "a password") == (True, None)


def test_dummy_hash_costs_what_a_real_check_costs() -> None:
    hasher = PasswordHasher()
    assert not hasher.check_needs_rehash(DUMMY_HASH)
    assert hasher.time_cost == RFC_9106_LOW_MEMORY.time_cost
