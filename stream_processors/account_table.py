"""The users' accounts: a changelog-backed table of their JSON, with live accounts in front.

The table holds each account as the JSON of its plain data, which is also what its changelog
carries. Converting a whole account from and to JSON costs as much as the account is large,
so the accounts last used are kept as live objects, and an account changed by several events
of a batch is written once, when the batch ends (``flush``): before its inputs are
acknowledged, so a restore after a crash finds every change whose input was committed.
Live accounts are forgotten whenever partitions are revoked or assigned (what is pending
written first): the table may then be restored from the changelog, and only it is read
afterwards.

Most of a busy account is what it remembers for deduplication: up to ``RECENT_LIMIT``
closed jobs, idempotency keys and ledger keys. Written whole, a user with a long history
would cost a record of about 200 KiB at every batch that touches the account. So the oldest
entries of each of those collections are sealed, ``CHUNK_ENTRIES`` at a time, into records
of their own (``<user>\\x1f<collection>\\x1f<number>``) on the account's partition, which are
written again only when an entry they hold is forgotten or changed. The account's own record
keeps the newer entries and, under ``chunks``, the numbers of its sealed records, oldest
first; one without sealed records is exactly the account's plain JSON.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Final

from faust.types import TableT
from pydantic import Field, TypeAdapter

from stream_processors.accounts import Account, Closed

__all__ = ["CHUNK_ENTRIES", "AccountTable", "chunk_key"]

_log = logging.getLogger(__name__)

DEFAULT_LIVE = 20_000
"""Accounts kept as live objects after a flush, at most; the least recently used go first."""
CHUNK_ENTRIES: Final = 100
"""Entries of a remembered collection sealed together into a record of their own."""
_SEPARATOR: Final = "\x1f"
_COLLECTIONS: Final[dict[str, TypeAdapter[Any]]] = {
    "closed": TypeAdapter(dict[str, Closed]),
    "idempotency": TypeAdapter(dict[str, str]),
    "ledger_keys": TypeAdapter(dict[str, bool]),
}


def chunk_key(user_id: str, collection: str, number: int) -> str:
    """The table key of one of the user's sealed records."""
    return f"{user_id}{_SEPARATOR}{collection}{_SEPARATOR}{number}"


class _Stored(Account):
    """An account as its own record holds it."""

    chunks: dict[str, list[int]] = Field(default_factory=dict)
    """Per collection, the numbers of the sealed records holding its oldest entries."""
    sizes: dict[str, int] = Field(default_factory=dict)
    """Per collection with sealed records, its entries: the oldest record may still hold
    some that were forgotten since it was written, which reading leaves out."""


@dataclass
class _Sealed:
    """What one live account's sealed records hold, as the objects its collections share."""

    chunks: dict[str, dict[int, dict[str, Any]]] = field(
        default_factory=lambda: {name: {} for name in _COLLECTIONS}
    )
    where: dict[str, dict[str, int]] = field(
        default_factory=lambda: {name: {} for name in _COLLECTIONS}
    )
    """Per collection, the number of the record holding each sealed entry."""
    next_number: int = 0


class AccountTable:
    def __init__(self, table: TableT[Any, Any], *, live: int = DEFAULT_LIVE) -> None:
        if live < 1:
            raise ValueError("at least one account is kept live")
        self._table = table
        self._live: OrderedDict[str, Account] = OrderedDict()
        self._sealed: dict[str, _Sealed] = {}
        self._limit = live
        self._pending: dict[str, int] = {}
        """Users whose account changed since the last flush, with their partition."""

    def get(self, user_id: str) -> Account:
        """The user's account; a new one for a user not seen yet."""
        account = self._live.get(user_id)
        if account is not None:
            self._live.move_to_end(user_id)
            return account
        stored = self._table.get(user_id)
        if stored is None:
            account, sealed = Account(), _Sealed()
        else:
            account, sealed = self._read(user_id, stored)
        self._sealed[user_id] = sealed
        self._keep(user_id, account)
        return account

    def set(self, user_id: str, account: Account, *, partition: int) -> None:
        """Changes the user's account, which is on ``partition``; the table gets it at ``flush``."""
        self._pending[user_id] = partition
        if user_id not in self._sealed:
            # Not read through ``get`` (a sweep's account): its sealed records as stored.
            stored = self._table.get(user_id)
            self._sealed[user_id] = _Sealed() if stored is None else self._read(user_id, stored)[1]
        self._keep(user_id, account)

    def flush(self) -> None:
        """Writes every account changed since the last flush to the table and its changelog."""
        pending, self._pending = self._pending, {}
        for user_id, partition in pending.items():
            self._write(user_id, partition)
        # Only now, with nothing pending, may accounts stop being live.
        self._trim()

    def items(self) -> Iterator[tuple[str, Account]]:
        """Every account in the table, without keeping those not live (sweeps read them all)."""
        for user_id, stored in list(self._table.items()):
            if _SEPARATOR in user_id:
                continue  # a sealed record, read with its account
            account = self._live.get(user_id)
            yield user_id, account if account is not None else self._read(user_id, stored)[0]

    def forget(self) -> None:
        """Drops the live accounts, so that the next reads go to the table."""
        self.flush()
        self._live.clear()
        self._sealed.clear()

    def _read(self, user_id: str, stored: bytes) -> tuple[Account, _Sealed]:
        record = _Stored.model_validate_json(stored)
        sealed = _Sealed()
        collections: dict[str, dict[str, Any]] = {}
        for name, adapter in _COLLECTIONS.items():
            entries: dict[str, Any] = {}
            for number in record.chunks.get(name, []):
                raw = self._table.get(chunk_key(user_id, name, number))
                if raw is None:
                    _log.warning("sealed record %s of %s's %s is missing", number, user_id, name)
                    continue
                chunk: dict[str, Any] = adapter.validate_json(raw)
                sealed.chunks[name][number] = chunk
                sealed.where[name].update(dict.fromkeys(chunk, number))
                sealed.next_number = max(sealed.next_number, number + 1)
                entries.update(chunk)
            entries.update(getattr(record, name))
            size = record.sizes.get(name, len(entries))
            for key in list(islice(entries, max(0, len(entries) - size))):
                del entries[key]
                sealed.where[name].pop(key, None)
            collections[name] = entries
        values = {name: getattr(record, name) for name in Account.model_fields}
        return Account.model_construct(**{**values, **collections}), sealed

    def _write(self, user_id: str, partition: int) -> None:
        account = self._live[user_id]
        sealed = self._sealed[user_id]
        newer: dict[str, dict[str, Any]] = {}
        for name in _COLLECTIONS:
            entries: dict[str, Any] = getattr(account, name)
            self._refresh(user_id, partition, sealed, name, entries)
            unsealed = _unsealed(entries, sealed.where[name])
            while len(unsealed) >= CHUNK_ENTRIES:
                taken, unsealed = unsealed[:CHUNK_ENTRIES], unsealed[CHUNK_ENTRIES:]
                number, sealed.next_number = sealed.next_number, sealed.next_number + 1
                self._put_chunk(user_id, partition, sealed, name, number, taken, entries)
            newer[name] = {key: entries[key] for key in unsealed}
        chunks = {name: list(held) for name, held in sealed.chunks.items() if held}
        sizes = {name: len(getattr(account, name)) for name in chunks}
        values = {name: getattr(account, name) for name in Account.model_fields}
        record = _Stored.model_construct(**{**values, **newer, "chunks": chunks, "sizes": sizes})
        stored = record.model_dump_json(exclude=None if chunks else {"chunks", "sizes"}).encode()
        self._table.send_changelog(partition, user_id, stored)
        self._table.data[user_id] = stored

    def _refresh(
        self,
        user_id: str,
        partition: int,
        sealed: _Sealed,
        name: str,
        entries: dict[str, Any],
    ) -> None:
        """Deletes the sealed records of ``name`` whose entries were all forgotten, and writes
        again those whose entries changed or were taken out otherwise.

        Entries are forgotten oldest first, so the oldest record left may have lost its
        first ones: it stays as it is, and reading drops them by the stored ``sizes``.
        """
        held = sealed.where[name]
        oldest = True
        for number, chunk in list(sealed.chunks[name].items()):
            # Compared in C: entries are replaced, never changed in place, so this is mostly
            # a question of identity, and all of the account's entries are asked each flush.
            if chunk.items() <= entries.items():
                oldest = False
                continue
            kept = [key for key in chunk if key in entries]
            for key in chunk.keys() - set(kept):
                held.pop(key, None)
            if not kept:
                del sealed.chunks[name][number]
                key = chunk_key(user_id, name, number)
                self._table.send_changelog(partition, key, None)
                self._table.data.pop(key, None)
                continue  # the next record left is now the oldest
            if not (oldest and _lost_its_first(chunk, entries)):
                # In its place: the records stay listed oldest first.
                self._put_chunk(user_id, partition, sealed, name, number, kept, entries)
            oldest = False

    def _put_chunk(
        self,
        user_id: str,
        partition: int,
        sealed: _Sealed,
        name: str,
        number: int,
        keys: list[str],
        entries: dict[str, Any],
    ) -> None:
        chunk = {key: entries[key] for key in keys}
        sealed.chunks[name][number] = chunk
        sealed.where[name].update(dict.fromkeys(keys, number))
        stored = _COLLECTIONS[name].dump_json(chunk)
        key = chunk_key(user_id, name, number)
        self._table.send_changelog(partition, key, stored)
        self._table.data[key] = stored

    def _keep(self, user_id: str, account: Account) -> None:
        self._live[user_id] = account
        self._live.move_to_end(user_id)

    def _trim(self) -> None:
        while len(self._live) > self._limit:
            user_id, _ = self._live.popitem(last=False)
            self._sealed.pop(user_id, None)


def _lost_its_first(chunk: dict[str, Any], entries: dict[str, Any]) -> bool:
    """Whether the entries of ``chunk`` gone from ``entries`` are its first ones, and the
    rest are as sealed."""
    items = iter(chunk.items())
    for key, value in items:
        if key in entries:
            return entries[key] == value and all(entries.get(k) == v for k, v in items)
    return False


def _unsealed(entries: dict[str, Any], where: dict[str, int]) -> list[str]:
    """The keys of ``entries`` that no sealed record holds, in order: ``where`` holds only
    keys of ``entries`` (forgotten ones are dropped first), and new entries go at the end,
    so these are its last ones, unless an entry was taken out and put back."""
    newest = list(islice(reversed(entries), len(entries) - len(where)))
    if any(key in where for key in newest):
        return [key for key in entries if key not in where]
    newest.reverse()
    return newest
