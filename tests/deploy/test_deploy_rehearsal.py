"""The scale-out rehearsal (tests/deploy/rehearsal.py): several instances of every scaled
service on three brokers, each replaced in turn under load, and nothing lost or charged
twice. Minutes long, so `make chaos` runs it, not `make test`."""

from __future__ import annotations

import pytest

from tests.chaos.driver import write_report
from tests.deploy.rehearsal import REPORT, rehearse


@pytest.mark.chaos
@pytest.mark.timeout(2400)
def test_a_rolling_restart_of_every_scaled_service_loses_nothing() -> None:
    report = rehearse(jobs=1200, users=20, rate_per_s=20)
    write_report(report, REPORT)
    assert report["fault_errors"] == []
    assert report["unacknowledged"] == 0
    assert report["lost"] == 0, report["lost_jobs"]
    assert report["terminal"] == report["acknowledged"] == 1200
    assert report["multiple_ends"] == 0
    assert report["double_charged"] == 0
    assert report["ledger_mismatches"] == 0
    assert report["rebuild_equal"], report["rebuild_report"]
    assert report["stopped_services"] == []
    assert report["processes"]["processors"] == report["processes"]["projection"] == 2
    # Sampled once the checks are done: every job has ended by then.
    for group in ("genstream-projection", "genstream-workers-synthetic"):
        assert report["lag"][group]["last"] == 0, group
