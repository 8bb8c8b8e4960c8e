"""Nothing acknowledged is lost and nobody is charged twice, while parts of genstream die.

The full run (``make chaos``) takes every fault in turn over 5,000 jobs and writes
``bench/results/chaos.json``; a shorter run over a few hundred jobs, with a GPU worker and
the stream processors killed, is part of ``make test``.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.driver import (
    POISONED_TOPICS,
    ROOT,
    ChaosStack,
    default_faults,
    run_chaos,
    write_report,
)


@pytest.fixture
def chaos_stack(tmp_path: Path) -> Iterator[ChaosStack]:
    stack = ChaosStack(uuid.uuid4().hex[:8])
    try:
        stack.up()
        yield stack
    finally:
        # The services' logs outlive the stack, for a failure to be read afterwards.
        shutil.copytree(stack.var_dir / "log", tmp_path / "chaos-logs", dirs_exist_ok=True)
        stack.down()


def _assert_nothing_lost(report: dict[str, object]) -> None:
    assert report["fault_errors"] == []
    assert report["unacknowledged"] == 0
    assert report["lost"] == 0, report["lost_jobs"]
    assert report["terminal"] == report["acknowledged"]
    assert report["multiple_ends"] == 0
    assert report["double_charged"] == 0
    assert report["ledger_mismatches"] == 0
    assert report["rebuild_equal"], report["rebuild_report"]
    assert report["stopped_services"] == []


@pytest.mark.timeout(1500)
def test_a_short_run_with_a_worker_and_the_processors_killed(chaos_stack: ChaosStack) -> None:
    wanted = {"garbage into every input topic", "stream processors", "gpu worker (synthetic)"}
    faults = [f for f in default_faults() if f.name in wanted]
    for fault in faults:
        fault.at_s -= 6
    report = run_chaos(chaos_stack, jobs=300, users=10, rate_per_s=25, faults=faults, settle_s=300)
    write_report(report, ROOT / "var" / "chaos-short.json")
    _assert_nothing_lost(report)
    # Each reader parks what it cannot read and carries on.
    assert set(report["parked_by_topic"]) >= set(POISONED_TOPICS) - {"jobs.progress"}
    # And after all that, the journey make dev shows still runs end to end.
    demo = chaos_stack.cli("demo", "--api-url", chaos_stack.api_url, "--timeout", "240")
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert demo.stdout.count("fetched through its URL") == 2
    assert report["acknowledged"] == 300


@pytest.mark.chaos
@pytest.mark.timeout(3600)
def test_every_fault_in_turn_over_five_thousand_jobs(chaos_stack: ChaosStack) -> None:
    report = run_chaos(
        chaos_stack, jobs=5000, users=100, rate_per_s=100, faults=default_faults(), settle_s=900
    )
    write_report(report, ROOT / "bench" / "results" / "chaos.json")
    _assert_nothing_lost(report)
    assert report["acknowledged"] == 5000
