"""How accounts are kept in the processors' table, written to its changelog and read back."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from faust.types import TableT

from contracts import (
    JobCompleted,
    JobRequested,
    JobStarted,
    JobType,
    SyntheticInput,
    load_catalog,
)
from stream_processors.account_table import CHUNK_ENTRIES, AccountTable, chunk_key
from stream_processors.accounts import RECENT_LIMIT, Account, Reservation, apply
from stream_processors.app import build_app
from stream_processors.settings import ProcessorSettings

CATALOG = load_catalog()
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def _request(job_id: str) -> JobRequested:
    return JobRequested(
        job_id=job_id,
        job_type=JobType.SYNTHETIC,
        input=SyntheticInput(kind="synthetic", steps=1, step_ms=0),
        requested_at=NOW,
    )


def _account_with_a_closed_and_an_open_job() -> Account:
    account = Account(balance=10)
    account, _ = apply(account, _request("done"), CATALOG)
    account, _ = apply(account, JobStarted(job_id="done", worker_id="w", attempt=1), CATALOG)
    done = JobCompleted(
        job_id="done", attempt=1, worker_id="w", outputs=(), run_ms=1, usage_units=1
    )
    account, _ = apply(account, done, CATALOG)
    account, _ = apply(account, _request("open"), CATALOG)
    return account


class _Table(dict[str, bytes]):
    """The faust table's mapping, store and changelog, as far as accounts use them."""

    def __init__(self, stored: dict[str, bytes] | None = None) -> None:
        super().__init__(stored or {})
        self.changelog: list[tuple[int, str, bytes | None]] = []

    @property
    def data(self) -> dict[str, bytes]:
        return self

    def send_changelog(self, partition: int, key: str, value: bytes | None) -> None:
        self.changelog.append((partition, key, value))


def _table(table: _Table, *, live: int = 100) -> AccountTable:
    return AccountTable(cast(TableT[Any, Any], table), live=live)


def test_changes_reach_the_table_and_its_changelog_once_per_flush_as_json() -> None:
    table = _Table()
    accounts = _table(table)
    account = _account_with_a_closed_and_an_open_job()
    accounts.set("u", Account(balance=1), partition=4)
    accounts.set("u", account, partition=4)
    assert accounts.get("u") is account
    assert table == {}
    accounts.flush()
    # Readers of the changelog (tests, benchmarks, operators) see the account's plain data.
    assert [(p, k, json.loads(v)) for p, k, v in table.changelog] == [
        (4, "u", account.model_dump(mode="json"))
    ]
    assert table["u"] == table.changelog[0][2]
    accounts.flush()
    assert len(table.changelog) == 1
    accounts.forget()
    read = accounts.get("u")
    assert read is not account
    assert read == account


def test_forgetting_live_accounts_writes_what_is_pending_first() -> None:
    table = _Table()
    accounts = _table(table)
    accounts.set("u", Account(balance=5), partition=0)
    accounts.forget()
    assert accounts.get("u") == Account(balance=5)
    assert [key for _, key, _ in table.changelog] == ["u"]


def test_a_user_not_seen_yet_has_a_new_account() -> None:
    assert _table(_Table()).get("nobody") == Account()


def test_the_least_recently_used_accounts_stop_being_live_and_are_read_from_the_table() -> None:
    accounts = _table(_Table(), live=2)
    oldest = Account(balance=1)
    accounts.set("a", oldest, partition=0)
    accounts.set("b", Account(balance=2), partition=0)
    accounts.set("c", Account(balance=3), partition=0)
    # Unwritten accounts stay live until the flush writes them.
    assert accounts.get("a") is oldest
    accounts.get("b")
    accounts.get("c")
    accounts.flush()
    read = accounts.get("a")
    assert read is not oldest
    assert read == oldest
    assert accounts.get("a") is read


def test_a_sweep_reads_every_account_without_keeping_them_live() -> None:
    stored = Account(balance=7)
    accounts = _table(_Table({"cold": stored.model_dump_json().encode()}), live=1)
    live = Account(balance=3)
    accounts.set("hot", live, partition=0)
    accounts.flush()
    swept = dict(accounts.items())
    assert swept == {"cold": stored, "hot": live}
    assert swept["hot"] is live
    # The sweep left the live account live.
    assert accounts.get("hot") is live


def test_closed_jobs_keep_only_what_writing_their_acceptance_again_needs() -> None:
    account = _account_with_a_closed_and_an_open_job()
    assert type(account.closed["done"].accepted) is Reservation
    stored = json.loads(account.model_dump_json())
    assert set(stored["closed"]["done"]["accepted"]) == {"amount", "job_type", "tier"}


def test_a_state_stored_with_whole_holds_in_closed_jobs_still_reads() -> None:
    account = _account_with_a_closed_and_an_open_job()
    stored: dict[str, Any] = account.model_dump(mode="json")
    # Closed jobs used to keep the whole hold of their acceptance.
    stored["closed"]["done"]["accepted"] = stored["holds"]["open"]
    read = _table(_Table({"u": json.dumps(stored).encode()})).get("u")
    accepted = read.closed["done"].accepted
    assert accepted == Reservation(
        amount=1, job_type=JobType.SYNTHETIC, tier=read.holds["open"].tier
    )
    # A redelivered request of the closed job writes its acceptance and settlement again.
    _, caused = apply(read, _request("done"), CATALOG)
    kinds = [type(e).__name__ for e in caused]
    assert kinds == ["JobAccepted", "CreditsReserved", "CreditsSettled"]


def test_the_accounts_table_stores_raw_json_values(tmp_path: Path) -> None:
    settings = ProcessorSettings(processors_data_dir=tmp_path, processors_app_id="table-test")
    app = build_app(settings, catalog=CATALOG)
    table = app.tables["accounts"]
    assert table.changelog_topic.value_serializer == "raw"
    assert table.changelog_topic.key_serializer == "json"


def _run_jobs(
    accounts: AccountTable, user: str, first: int, count: int, *, flush_every: int
) -> None:
    """``count`` jobs requested with an idempotency key, started and completed, the way the
    agent does it: read, apply, set, and a flush every few events."""
    events = 0
    for index in range(first, first + count):
        job = f"job-{index}"
        request = _request(job).model_copy(update={"idempotency_key": f"key-{index}"})
        done = JobCompleted(
            job_id=job, attempt=1, worker_id="w", outputs=(), run_ms=1, usage_units=1
        )
        for event in (request, JobStarted(job_id=job, worker_id="w", attempt=1), done):
            after, _ = apply(accounts.get(user), event, CATALOG)
            accounts.set(user, after, partition=3)
            events += 1
            if events % flush_every == 0:
                accounts.flush()
    accounts.flush()


def _sealed_keys(table: _Table, user: str) -> set[str]:
    return {key for key in table if key.startswith(f"{user}\x1f")}


def test_a_long_history_is_sealed_in_records_of_its_own_and_reads_back_whole() -> None:
    table = _Table()
    accounts = _table(table)
    accounts.set("u", Account(balance=1_000_000), partition=3)
    jobs = RECENT_LIMIT + 2 * CHUNK_ENTRIES + 37
    _run_jobs(accounts, "u", 0, jobs, flush_every=7)
    live = accounts.get("u")
    assert len(live.closed) == len(live.idempotency) == RECENT_LIMIT

    read = _table(table).get("u")
    assert read == live
    assert list(read.closed) == list(live.closed)  # the order decides what is forgotten next
    own = json.loads(table["u"])
    assert len(own["closed"]) < CHUNK_ENTRIES
    # Every sealed record is listed by the account, and none is left of forgotten entries.
    listed = {
        chunk_key("u", name, number)
        for name, numbers in own["chunks"].items()
        for number in numbers
    }
    assert _sealed_keys(table, "u") == listed
    assert any(value is None for _, _, value in table.changelog)


def test_with_a_full_history_a_flush_writes_a_small_part_of_the_account() -> None:
    table = _Table()
    accounts = _table(table)
    accounts.set("u", Account(balance=1_000_000), partition=3)
    _run_jobs(accounts, "u", 0, RECENT_LIMIT + CHUNK_ENTRIES, flush_every=3)
    whole = len(accounts.get("u").model_dump_json())
    table.changelog.clear()
    _run_jobs(accounts, "u", RECENT_LIMIT + CHUNK_ENTRIES, 30, flush_every=3)
    flushes = 30
    written = sum(len(value or b"") for _, _, value in table.changelog)
    assert written / flushes < whole / 4, (written / flushes, whole)
    assert _table(table).get("u") == accounts.get("u")


def test_an_account_stored_whole_reads_as_it_was_and_is_sealed_when_next_written() -> None:
    source = _table(_Table())
    source.set("u", Account(balance=1_000_000), partition=3)
    _run_jobs(source, "u", 0, 300, flush_every=5)
    whole = source.get("u")
    table = _Table({"u": whole.model_dump_json().encode()})
    accounts = _table(table)
    assert accounts.get("u") == whole
    _run_jobs(accounts, "u", 300, 1, flush_every=5)
    assert len(json.loads(table["u"])["closed"]) < CHUNK_ENTRIES
    assert _table(table).get("u") == accounts.get("u")


def test_an_account_a_sweep_changes_keeps_its_sealed_records() -> None:
    table = _Table()
    writer = _table(table)
    writer.set("u", Account(balance=1_000_000), partition=3)
    _run_jobs(writer, "u", 0, 3 * CHUNK_ENTRIES, flush_every=5)
    sealed = _sealed_keys(table, "u")
    assert sealed
    sweeper = _table(table)
    swept = dict(sweeper.items())
    assert set(swept) == {"u"}
    sweeper.set("u", swept["u"].model_copy(update={"balance": 5}), partition=3)
    table.changelog.clear()
    sweeper.flush()
    # Only the account's own record was written: its sealed records were already stored.
    assert [key for _, key, _ in table.changelog] == ["u"]
    assert _sealed_keys(table, "u") == sealed
    assert _table(table).get("u") == swept["u"].model_copy(update={"balance": 5})


def test_an_entry_taken_out_of_a_newer_sealed_record_is_written_again() -> None:
    table = _Table()
    accounts = _table(table)
    accounts.set("u", Account(balance=1_000_000), partition=3)
    _run_jobs(accounts, "u", 0, 4 * CHUNK_ENTRIES, flush_every=5)
    second = json.loads(table["u"])["chunks"]["closed"][1]
    first_of_second = next(iter(json.loads(table[chunk_key("u", "closed", second)])))
    account = accounts.get("u")
    closed = dict(account.closed)
    del closed[first_of_second]
    changed = account.model_copy(update={"closed": closed})
    accounts.set("u", changed, partition=3)
    accounts.flush()
    # Only the oldest record may keep entries that reading leaves out.
    assert _table(table).get("u") == changed
