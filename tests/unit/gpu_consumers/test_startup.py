"""The startup gate: the first job waits until every tier has shown what waits on it."""

from __future__ import annotations

from gpu_consumers.startup import StartupGate

TOPICS = ("jobs.image.pro", "jobs.image.creator", "jobs.image.free")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def assign_all(gate: StartupGate) -> None:
    for topic in TOPICS:
        gate.assigned(topic, [(topic, 0), (topic, 1)])


def test_closed_until_every_tier_has_joined() -> None:
    gate = StartupGate(TOPICS, grace_s=30, clock=Clock())
    gate.assigned("jobs.image.free", [])
    gate.assigned("jobs.image.creator", [])
    assert not gate.joined
    assert not gate.is_open()
    gate.assigned("jobs.image.pro", [])
    assert gate.joined
    assert gate.is_open()


def test_a_joined_tier_whose_partitions_have_not_been_read_keeps_it_closed() -> None:
    gate = StartupGate(TOPICS, grace_s=30, clock=Clock())
    assign_all(gate)
    for topic in ("jobs.image.free", "jobs.image.creator"):
        gate.read((topic, 0))
        gate.read((topic, 1))
    gate.read(("jobs.image.pro", 0))
    assert not gate.is_open()
    gate.read(("jobs.image.pro", 1))
    assert gate.is_open()


def test_a_revoked_partition_is_no_longer_waited_for() -> None:
    gate = StartupGate(TOPICS, grace_s=30, clock=Clock())
    assign_all(gate)
    for topic in TOPICS:
        gate.read((topic, 0))
    gate.revoked([(topic, 1) for topic in TOPICS])
    assert gate.is_open()


def test_the_grace_period_bounds_the_wait() -> None:
    clock = Clock()
    gate = StartupGate(TOPICS, grace_s=30, clock=clock)
    clock.now = 100.0
    gate.restart()
    gate.assigned("jobs.image.free", [("jobs.image.free", 0)])
    clock.now = 129.9
    assert not gate.is_open()
    clock.now = 130.0
    assert gate.is_open()


def test_once_open_it_stays_open_through_later_assignments() -> None:
    gate = StartupGate(TOPICS, grace_s=30, clock=Clock())
    assign_all(gate)
    for topic in TOPICS:
        gate.read((topic, 0))
        gate.read((topic, 1))
    assert gate.is_open()
    gate.assigned("jobs.image.pro", [("jobs.image.pro", 2)])
    assert gate.is_open()


def test_it_says_whether_it_opened_on_the_backlog_and_after_how_long() -> None:
    clock = Clock()
    gate = StartupGate(TOPICS, grace_s=30, clock=clock)
    assign_all(gate)
    clock.now = 1.5
    for topic in TOPICS:
        gate.read((topic, 0))
        gate.read((topic, 1))
    assert gate.is_open()
    assert gate.caught_up
    clock.now = 9.0
    assert gate.waited_s == 1.5
