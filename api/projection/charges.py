"""What each finished job cost, from its settlement (or release) on the credits ledger."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, bindparam, text

__all__ = ["record_charges"]

# A settlement moves (charge + released) out of the hold and ``released`` back to the
# balance, so -reserved_change - amount is the charge; a release and a reservation add 0.
# Summing over the job's rows keeps this right whatever order the ledger arrived in.
_RECORD_CHARGES = text(
    """
    UPDATE jobs SET credits_charged = charged.amount, updated_at = now()
    FROM (
        SELECT job_id, SUM(-reserved_change - amount) AS amount
        FROM credit_ledger
        WHERE job_id IN :job_ids AND kind IN ('settled', 'released')
        GROUP BY job_id
    ) AS charged
    WHERE jobs.id = charged.job_id AND jobs.credits_charged IS DISTINCT FROM charged.amount
    """
).bindparams(bindparam("job_ids", expanding=True))


def record_charges(connection: Connection, job_ids: Iterable[str]) -> None:
    """Sets ``credits_charged`` of jobs whose reservation was settled or released."""
    ids = sorted(set(job_ids))
    if ids:
        connection.execute(_RECORD_CHARGES, {"job_ids": ids})
