"""A new user's first requests may overtake their sign-up grant; they wait for it a little.

The processors read a user's commands and ledger from two topics, and Kafka orders nothing
across topics: a request sent the moment sign-up answers can be read before the grant the
outbox relay published a few milliseconds earlier. An account that has seen no credit at
all is then "owed" one, and rejecting its request for want of credits would be wrong.

Such a request is written again to the back of its partition instead, stamped with when it
began to wait, and decided when it comes round again: by then the ledger records that were
behind it have been read. It waits at most ``limit_s`` from its first deferral and comes
round at most ``max_rounds`` times, then is rejected as any other; accounts that have seen
a credit never wait.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["WAITING_SINCE_HEADER", "CreditWait", "Headers"]

WAITING_SINCE_HEADER = "genstream-credit-wait"
"""``<first deferral, epoch ms>:<rounds so far>`` on a request written again to wait."""

Headers = Sequence[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class CreditWait:
    limit_s: float = 5.0
    """How long a request may wait for its account's first credit; 0 turns waiting off."""
    max_rounds: int = 200
    """How often it may come round: an idle partition brings it back within milliseconds."""

    def may_wait(self, headers: Headers, now_s: float) -> bool:
        """Whether a request read with ``headers`` at ``now_s`` may wait once more."""
        if self.limit_s <= 0:
            return False
        stamp = _stamp(headers)
        if stamp is None:
            return True
        since_s, rounds = stamp
        return rounds < self.max_rounds and now_s - since_s < self.limit_s

    def again(self, headers: Headers, now_s: float) -> list[tuple[str, bytes]]:
        """The headers of the request written again: the others kept, the stamp moved on."""
        stamp = _stamp(headers)
        since_s, rounds = stamp if stamp is not None else (now_s, 0)
        kept = [(key, value) for key, value in headers if key != WAITING_SINCE_HEADER]
        value = f"{round(since_s * 1000)}:{rounds + 1}".encode()
        return [*kept, (WAITING_SINCE_HEADER, value)]


def _stamp(headers: Headers) -> tuple[float, int] | None:
    """The stamp, or ``None`` when there is none; a malformed one reads as spent (no wait)."""
    for key, value in headers:
        if key != WAITING_SINCE_HEADER:
            continue
        since_ms, _, rounds = value.partition(b":")
        try:
            return int(since_ms) / 1000, int(rounds)
        except ValueError:
            return 0.0, 1 << 30
    return None
