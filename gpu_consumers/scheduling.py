"""Which tier a worker serves next: pro first, with a guaranteed share for the others.

Stride scheduling over the tiers that have work waiting. Each tier has a pass value that
advances by ``1 / share`` each time one of its jobs starts; the waiting tier with the lowest
pass goes next, ties to the higher tier. Under saturation each tier gets its share of starts
(70/20/10 by default), so none starves. A tier that had nothing waiting does not bank
credit while idle: it rejoins at the current virtual time, and with the tie going to the
higher tier, a pro job that arrives behind a deep free backlog starts next.
"""

from __future__ import annotations

from collections.abc import Mapping

from contracts import Tier

__all__ = ["DEFAULT_SHARES", "TierScheduler", "parse_shares"]

DEFAULT_SHARES: Mapping[Tier, float] = {Tier.PRO: 0.7, Tier.CREATOR: 0.2, Tier.FREE: 0.1}
PRIORITY: tuple[Tier, ...] = tuple(Tier)
"""Tiers highest first, as ``Tier`` declares them."""


def parse_shares(text: str) -> dict[Tier, float]:
    """Reads ``"70,20,10"`` (pro, creator, free; any positive numbers) into fractions."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != len(PRIORITY):
        raise ValueError(f"expected {len(PRIORITY)} shares (pro,creator,free), got {text!r}")
    try:
        weights = [float(part) for part in parts]
    except ValueError:
        raise ValueError(f"shares must be numbers, got {text!r}") from None
    if any(weight <= 0 for weight in weights):
        raise ValueError(f"every tier needs a share above zero, got {text!r}")
    total = sum(weights)
    return {tier: weight / total for tier, weight in zip(PRIORITY, weights, strict=True)}


class TierScheduler:
    def __init__(self, shares: Mapping[Tier, float] = DEFAULT_SHARES) -> None:
        if set(shares) != set(PRIORITY) or any(share <= 0 for share in shares.values()):
            raise ValueError("every tier needs a share above zero")
        self._stride = {tier: 1.0 / share for tier, share in shares.items()}
        self._pass = dict.fromkeys(PRIORITY, 0.0)
        self._now = 0.0

    def pick(self, waiting: Mapping[Tier, int]) -> Tier | None:
        """The tier whose job starts next, given how many wait in each; records the start."""
        ready = [tier for tier in PRIORITY if waiting.get(tier, 0) > 0]
        if not ready:
            return None
        for tier in ready:
            self._pass[tier] = max(self._pass[tier], self._now)
        chosen = min(ready, key=lambda tier: (self._pass[tier], PRIORITY.index(tier)))
        self._now = self._pass[chosen]
        self._pass[chosen] += self._stride[chosen]
        return chosen
