"""Records a consumer group read, from its committed offsets before and after a window."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain, count, repeat

from bench.groups import Positions, at_end, read_by_topic, settle, written_by_topic


def _positions(
    committed: dict[str, dict[tuple[str, int], int]],
    ends: dict[tuple[str, int], int],
    starts: dict[tuple[str, int], int] | None = None,
) -> Positions:
    return Positions(committed=committed, starts=starts or dict.fromkeys(ends, 0), ends=ends)


def test_a_group_read_its_committed_offsets_growth_summed_per_topic() -> None:
    ends = {("jobs.lifecycle", 0): 50, ("jobs.lifecycle", 1): 40, ("jobs.requested", 0): 10}
    before = _positions(
        {"processors": {("jobs.lifecycle", 0): 10, ("jobs.lifecycle", 1): 20}}, ends
    )
    after = _positions(
        {
            "processors": {
                ("jobs.lifecycle", 0): 50,
                ("jobs.lifecycle", 1): 40,
                ("jobs.requested", 0): 10,
            }
        },
        ends,
    )
    # 40 + 20 on the lifecycle; the requested partition had no commit before: from its start.
    read = read_by_topic(before, after)
    assert read == {"processors": {"jobs.lifecycle": 60, "jobs.requested": 10}}


def test_a_partition_first_committed_counts_from_its_log_start_then() -> None:
    ends = {("t", 0): 120}
    before = _positions({}, ends, starts={("t", 0): 100})
    after = _positions({"g": {("t", 0): 120}}, ends, starts={("t", 0): 100})
    assert read_by_topic(before, after) == {"g": {"t": 20}}


def test_a_group_that_committed_nothing_read_nothing() -> None:
    ends = {("t", 0): 5}
    assert read_by_topic(_positions({"g": {}}, ends), _positions({"g": {}}, ends)) == {"g": {}}


def test_written_is_the_growth_of_the_log_ends() -> None:
    before = _positions({}, {("t", 0): 5, ("t", 1): 0})
    after = _positions({}, {("t", 0): 9, ("t", 1): 3, ("u", 0): 2})
    assert written_by_topic(before, after) == {"t": 7, "u": 2}


def test_at_end_only_where_every_partition_of_a_committed_topic_is_read_to_its_end() -> None:
    ends = {("t", 0): 5, ("t", 1): 7, ("u", 0): 3}
    assert at_end(_positions({"g": {("t", 0): 5, ("t", 1): 7}, "h": {}}, ends))
    assert not at_end(_positions({"g": {("t", 0): 5, ("t", 1): 6}}, ends))
    # A partition of the topic it has not committed yet, with records on it, holds it back.
    assert not at_end(_positions({"g": {("t", 0): 5}}, ends))
    assert at_end(_positions({"g": {("t", 0): 5}}, {("t", 0): 5, ("t", 1): 0}))
    # A topic it has committed nothing of, or one whose end is unknown, does not.
    assert at_end(_positions({"g": {("other", 0): 1}}, ends))


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _settle(readings: Iterator[dict[str, dict[tuple[str, int], int]]], clock: _Clock) -> bool:
    _, settled = settle(
        lambda: _positions(next(readings), {("t", 0): 10}),
        quiet_s=6,
        timeout_s=20,
        clock=clock,
        sleep=clock.sleep,
    )
    return settled


def test_settle_waits_until_no_commit_has_moved_for_the_quiet_time() -> None:
    clock = _Clock()
    commits = [{"g": {("t", 0): 4}}, {"g": {("t", 0): 8}}, {"g": {("t", 0): 10}}]
    assert _settle(chain(commits, repeat(commits[-1])), clock)
    # The last move was seen at 1.0 s; then 6 s without one.
    assert clock.now == 7.0


def test_settle_gives_up_at_its_deadline_when_the_groups_keep_committing() -> None:
    clock = _Clock()
    assert not _settle(({"g": {("t", 0): n}} for n in count()), clock)
    assert 20 <= clock.now <= 21
