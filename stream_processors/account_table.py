"""The users' accounts: a changelog-backed table of their JSON, with live accounts in front.

The table holds each account as the JSON of its plain data, which is also what its changelog
carries. Converting a whole account from and to JSON costs as much as the account is large,
so the accounts last used are kept as live objects, and an account changed by several events
of a batch is written once, when the batch ends (``flush``): before its inputs are
acknowledged, so a restore after a crash finds every change whose input was committed.
Live accounts are forgotten whenever partitions are revoked or assigned (what is pending
written first): the table may then be restored from the changelog, and only it is read
afterwards.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from faust.types import TableT

from stream_processors.accounts import Account

DEFAULT_LIVE = 20_000
"""Accounts kept as live objects after a flush, at most; the least recently used go first."""


class AccountTable:
    def __init__(self, table: TableT[Any, Any], *, live: int = DEFAULT_LIVE) -> None:
        if live < 1:
            raise ValueError("at least one account is kept live")
        self._table = table
        self._live: OrderedDict[str, Account] = OrderedDict()
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
        account = Account() if stored is None else Account.model_validate_json(stored)
        self._keep(user_id, account)
        return account

    def set(self, user_id: str, account: Account, *, partition: int) -> None:
        """Changes the user's account, which is on ``partition``; the table gets it at ``flush``."""
        self._pending[user_id] = partition
        self._keep(user_id, account)

    def flush(self) -> None:
        """Writes every account changed since the last flush to the table and its changelog."""
        pending, self._pending = self._pending, {}
        for user_id, partition in pending.items():
            stored = self._live[user_id].model_dump_json().encode()
            self._table.send_changelog(partition, user_id, stored)
            self._table.data[user_id] = stored
        # Only now, with nothing pending, may accounts stop being live.
        self._trim()

    def items(self) -> Iterator[tuple[str, Account]]:
        """Every account in the table, without keeping those not live (sweeps read them all)."""
        for user_id, stored in list(self._table.items()):
            account = self._live.get(user_id)
            yield user_id, account if account is not None else Account.model_validate_json(stored)

    def forget(self) -> None:
        """Drops the live accounts, so that the next reads go to the table."""
        self.flush()
        self._live.clear()

    def _keep(self, user_id: str, account: Account) -> None:
        self._live[user_id] = account
        self._live.move_to_end(user_id)

    def _trim(self) -> None:
        while len(self._live) > self._limit:
            self._live.popitem(last=False)
