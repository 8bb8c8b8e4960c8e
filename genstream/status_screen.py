"""``genstream status`` on one screen: a ``StatusSnapshot`` as plain text."""

from __future__ import annotations

from genstream.system_status import StatusSnapshot

__all__ = ["render_status"]


def _wait(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def render_status(status: StatusSnapshot) -> str:
    lines = [
        f"genstream status at {status.taken_at:%Y-%m-%d %H:%M:%S}Z: "
        + ("HEALTHY" if status.healthy else "UNHEALTHY"),
    ]
    lines += [f"  ! {problem}" for problem in status.problems]
    lines.append("")
    lines.append(
        "services   "
        + "  ".join(
            f"{service.name} {'up' if service.up else 'DOWN'}" for service in status.services
        )
    )
    lines.append("")
    lines.append(f"{'tier':22} {'depth':>7} {'oldest wait':>12} {'ttl':>7}")
    for tier in status.tiers:
        if tier.depth == 0 and tier.oldest_wait_s is None:
            continue
        late = (
            " PAST TTL"
            if (
                tier.oldest_wait_s is not None
                and tier.queue_ttl_s is not None
                and tier.oldest_wait_s > tier.queue_ttl_s
            )
            else ""
        )
        ttl = _wait(float(tier.queue_ttl_s)) if tier.queue_ttl_s is not None else "-"
        lines.append(
            f"{tier.workload + '/' + tier.tier:22} {tier.depth:>7} "
            f"{_wait(tier.oldest_wait_s):>12} {ttl:>7}{late}"
        )
    if all(tier.depth == 0 and tier.oldest_wait_s is None for tier in status.tiers):
        lines.append("  (every tier empty)")
    lines.append("")
    lines.append(f"{'consumer group':32} {'state':12} {'members':>7} {'lag':>9}  worst partition")
    for group in status.groups:
        worst = max(group.partitions, key=lambda p: p.lag, default=None)
        where = f"{worst.topic}[{worst.partition}] {worst.lag}" if worst and worst.lag else ""
        lines.append(
            f"{group.group:32} {group.state:12} {group.members:>7} {group.lag:>9}  {where}"
        )
    lines.append("")
    total = sum(entry.count for entry in status.dead_letters_last_hour)
    lines.append(f"dead letters in the last hour: {total}")
    lines += [
        f"  {entry.count:>6}  {entry.reason}  (from {entry.topic or '?'})"
        for entry in status.dead_letters_last_hour
    ]
    lines.append("")
    ended = status.finished_last_hour
    completed, failed = sum(m.completed for m in ended), sum(m.failed for m in ended)
    other = sum(m.other for m in ended)
    lines.append(
        f"ended in the last hour: {completed} completed, {failed} failed, {other} other"
        + (
            f" (busiest minute {max(m.completed + m.failed + m.other for m in ended)})"
            if ended
            else ""
        )
    )
    lines.append("")
    lines.append(f"workers running jobs: {len(status.workers)}")
    for worker in status.workers:
        since = f"{worker.oldest_started_at:%H:%M:%S}" if worker.oldest_started_at else "?"
        lines.append(
            f"  {worker.worker_id:28} {worker.running:>4} running  {','.join(worker.job_types):24} "
            f"since {since}  {' '.join(worker.job_ids[:3])}"
        )
    lines.append("")
    lines.append(f"last failures: {len(status.recent_failures)}")
    for failure in status.recent_failures:
        when = f"{failure.finished_at:%H:%M:%S}" if failure.finished_at else "?"
        lines.append(
            f"  {when}  {failure.job_id}  {failure.type}/{failure.tier or '?'}  "
            f"{failure.error_code or '?'}: {(failure.error or '')[:60]}"
        )
    lines.append("")
    lines.append(
        f"reserved credits: {status.reserved_credits} "
        f"(held by {status.accounts_with_reservations} account(s))"
    )
    return "\n".join(lines)
