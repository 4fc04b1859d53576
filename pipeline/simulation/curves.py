"""`curves`: the bank's customers, whose interest in each offer moves with time its own way.

The catalogue documents each offer's time-value curve (primary and secondary interest periods,
the secondary period's worth), and the ranker's default objective weighs every offer by it. In
this world the customers do not follow the documentation: each offer has a *true curve* of one
kind, seeded per offer, and only one kind in five is the documented one.

- `documented`: interest as the catalogue says (the `bank` world's phase factors).
- `evergreen`: accepted at the same rate with or without a trigger, at any time.
- `short`: primary and secondary interest half as long as documented.
- `long`: primary and secondary interest twice as long as documented.
- `rich-secondary`: the secondary period is nearly as good as the primary one.

Everything else (segments, tastes, appeal, journey events, fatigue, the launched offer) is the
`bank` world's (`pipeline.simulation.world`). Past the point of negative impact nothing is shown,
whatever the truth: that stays a rule.

>>> world = CurvesWorld(customers=20, seed=3)
>>> sorted(set(curve.kind for curve in world.curves.values())) == sorted(KINDS)
True
>>> customer = world.customers[0].customer_id
>>> evergreen = next(o for o, c in world.curves.items() if c.kind == "evergreen")
>>> category = next(o["category"] for o in world.offers() if o["offer_id"] == evergreen)
>>> world.p_accept(customer, evergreen, category, "irrelevant", 0, days_since_trigger=None) == (
...     world.p_accept(customer, evergreen, category, "primary", 0, days_since_trigger=0.5))
True
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from pipeline.simulation.world import FATIGUE, PHASE_FACTOR, World

# Each kind's (stretch of the documented periods, factor in the secondary period, factor with
# no trigger or past the periods); the documented factors are the bank world's
KINDS: dict[str, tuple[float, float, float]] = {
    "documented": (1.0, PHASE_FACTOR["secondary"], PHASE_FACTOR["irrelevant"]),
    "evergreen": (1.0, 1.0, 1.0),
    "short": (0.5, PHASE_FACTOR["secondary"], PHASE_FACTOR["irrelevant"]),
    "long": (2.0, PHASE_FACTOR["secondary"], PHASE_FACTOR["irrelevant"]),
    "rich-secondary": (1.0, 0.9, PHASE_FACTOR["irrelevant"]),  # documented: 0.5
}


@dataclass(frozen=True)
class TrueCurve:
    """How an offer's P(accept) really moves with the days since its trigger, as a factor of
    its P(accept) in its primary period.

    >>> curve = TrueCurve("short", primary_days=1.0, secondary_days=2.5, secondary_factor=0.5,
    ...                   idle_factor=0.12)
    >>> [curve.factor(days) for days in (0.5, 2.0, 9.0, None)]
    [1.0, 0.5, 0.12, 0.12]
    """

    kind: str
    primary_days: float
    secondary_days: float
    secondary_factor: float
    idle_factor: float  # with no trigger seen, or past the secondary period

    def factor(self, days_since_trigger: float | None) -> float:
        days = days_since_trigger
        if days is None or days >= self.primary_days + self.secondary_days:
            return self.idle_factor
        return 1.0 if days < self.primary_days else self.secondary_factor

    @classmethod
    def of(cls, kind: str, offer: dict[str, Any]) -> TrueCurve:
        """The true curve of `kind` for an offer with the catalogue's documented periods."""
        stretch, secondary_factor, idle_factor = KINDS[kind]
        return cls(
            kind,
            primary_days=float(offer["primary_interest_days"]) * stretch,
            secondary_days=float(offer["secondary_interest_days"]) * stretch,
            secondary_factor=secondary_factor,
            idle_factor=idle_factor,
        )


class CurvesWorld(World):
    """The bank world with a true time curve per offer (see the module's docstring)."""

    def __init__(self, customers: int = 2000, seed: int = 7) -> None:
        super().__init__(customers, seed)
        offers = [*self.offers(), self.new_offer()]
        # every kind for about as many offers, in a seeded order
        kinds = [tuple(KINDS)[i % len(KINDS)] for i in range(len(offers))]
        random.Random(f"{seed}/curves").shuffle(kinds)
        self.curves = {
            offer["offer_id"]: TrueCurve.of(kind, offer)
            for offer, kind in zip(offers, kinds, strict=True)
        }

    def p_accept(
        self,
        customer_id: str,
        offer_id: str,
        category: str,
        phase: str,
        unanswered: int,
        days_since_trigger: float | None = None,
    ) -> float:
        """The true probability that this customer accepts this offer now (hidden): its true
        curve at `days_since_trigger` (moved on by fatigue, as the channel gives it) in place
        of the documented `phase`, but past the point of negative impact, which the documented
        phase says."""
        primary = self.primary_acceptance(customer_id, offer_id, category)
        curve = self.curves.get(offer_id)
        if phase == "negative" or curve is None:
            factor = PHASE_FACTOR[phase]
        else:
            factor = curve.factor(days_since_trigger)
        return min(0.95, primary * factor * FATIGUE**unanswered)
