"""Password hashing with Argon2id; hashing runs off the event loop, it is slow on purpose."""

from __future__ import annotations

from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from starlette.concurrency import run_in_threadpool

MAX_LENGTH: Final = 256
"""Longer inputs are refused before hashing: Argon2 would accept them, at a cost per byte."""

DUMMY_HASH: Final = (
    "$argon2id$v=19$m=65536,t=3,p=4$+drtdLf9fzIIEeIUJV3FvA"
    "$YcrSam8/UpYJTUzpuH3eGTfYcnCaR8gIdztpaNJuyjY"
)
"""Checked when there is no account, so an unknown email costs the time of a wrong password.

Its parameters must be the hasher's own, or the timing would differ; a unit test sees to it.
"""


def _hash(password: str) -> str:
    return PasswordHasher().hash(password)


def _verify(password_hash: str | None, password: str) -> tuple[bool, str | None]:
    hasher = PasswordHasher()
    try:
        hasher.verify(password_hash or DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False, None
    if password_hash is None:
        return False, None
    return True, hasher.hash(password) if hasher.check_needs_rehash(password_hash) else None


async def hash_password(password: str) -> str:
    return await run_in_threadpool(_hash, password)


async def verify_password(password_hash: str | None, password: str) -> tuple[bool, str | None]:
    """Whether ``password`` matches, and a new hash when the stored one has outdated parameters.

    A ``password_hash`` of ``None`` (no such account, or one that signs in only through OIDC)
    is checked against ``DUMMY_HASH`` and fails, in about the time a real check takes.
    """
    return await run_in_threadpool(_verify, password_hash, password)
