"""Features of one candidate offer for one customer at one moment.

Pure functions: they take the customer view, the offer and the decision context and return a
new `dict[str, float]`; they never change their inputs. `DecisionFeatures` gives the same
features split in a part shared by many candidates of a decision and a part of each one's own,
so that the ranker scores the shared part once.

>>> context = DecisionContext(hour=9, weekday=0, channel="web", event_type="travel_booking")
>>> customer = CustomerPart.of({"segment": "mass", "age": 34, "products_held": ["card"]})
>>> offer = {"category": "insurance"}
>>> x = candidate_features(customer, offer, context, days_since_trigger=0.5, phase="primary",
...                        impressions=1, unanswered=1)
>>> x["segment=mass×category=insurance"], x["event=travel_booking×category=insurance"]
(1.0, 1.0)
>>> "holds_category" in x
False
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

FEATURE_SET = "v1: bias, segment, age band, category, phase, channel, hour, weekday, crosses"


@dataclass(frozen=True)
class DecisionContext:
    hour: int
    weekday: int
    channel: str
    event_type: str

    @classmethod
    def at(cls, moment: datetime, channel: str, event_type: str) -> DecisionContext:
        return cls(
            hour=moment.hour, weekday=moment.weekday(), channel=channel, event_type=event_type
        )


def age_band(age: float) -> str:
    """The customer's age band.

    >>> age_band(17), age_band(30), age_band(70)
    ('<25', '25-39', '65+')
    """
    for upper, label in ((25, "<25"), (40, "25-39"), (55, "40-54"), (65, "55-64")):
        if age < upper:
            return label
    return "65+"


@dataclass(frozen=True)
class CustomerPart:
    """The customer's part of the features: the same for every candidate of a decision, so it
    is computed once per decision."""

    segment: str
    age_band: str
    products_held: frozenset[str]

    @classmethod
    def of(cls, customer: dict[str, Any]) -> CustomerPart:
        return cls(
            segment=str(customer.get("segment", "unknown")),
            age_band=age_band(float(customer.get("age") or 0)),
            products_held=frozenset(customer.get("products_held", ())),
        )


def candidate_features(
    customer: CustomerPart,
    offer: dict[str, Any],
    context: DecisionContext,
    *,
    days_since_trigger: float | None,
    phase: str,
    impressions: int,
    unanswered: int,
) -> dict[str, float]:
    """All features of one candidate: customer, offer, context and their crosses."""
    shared, own = DecisionFeatures(customer, context).parts(
        offer["category"], phase, days_since_trigger, impressions, unanswered
    )
    return {**shared, **own}


_TENTHS = tuple(count / 10 for count in range(11))  # a count within [0, 10], scaled to [0, 1]


class DecisionFeatures:
    """The features of the candidates of one decision, in two parts per candidate.

    `parts` gives (shared, own), with no feature in both; together they are exactly
    `candidate_features`. The shared part depends only on the customer, the context, the offer's
    category and its phase, so the candidates of a decision have a few of them: each is built
    once, is one read-only object for all candidates that have it, and a linear model scores it
    once per decision instead of once per candidate. The own part is a new dict per call.
    """

    def __init__(self, customer: CustomerPart, context: DecisionContext) -> None:
        self._customer = customer
        self._context = context
        self._shared: dict[tuple[str, str], dict[str, float]] = {}

    def parts(
        self,
        category: str,
        phase: str,
        days_since_trigger: float | None,
        impressions: int,
        unanswered: int,
    ) -> tuple[dict[str, float], dict[str, float]]:
        shared = self._shared.get((category, phase))
        if shared is None:
            shared = _categorical(self._customer, category, phase, self._context)
            self._shared[category, phase] = shared
        own = {
            "impressions": _TENTHS[max(0, min(impressions, 10))],
            "unanswered": _TENTHS[max(0, min(unanswered, 10))],
        }
        if days_since_trigger is not None:
            own["log_days_since_trigger"] = math.log1p(max(0.0, days_since_trigger)) / 5
        if category in self._customer.products_held:
            own["holds_category"] = 1.0
        return shared, own


def _categorical(
    customer: CustomerPart, category: str, phase: str, context: DecisionContext
) -> dict[str, float]:
    """The features that depend only on the customer, category, phase and context.

    Each block below is cached on the few values it depends on, so its names are formatted once
    per process, not once per candidate (the whole combination is too varied to cache well)."""
    return {
        **_customer_block(customer.segment, customer.age_band, category),
        **_phase_block(phase, category),
        **_context_block(context.channel, context.event_type, category),
        **_time_block(context.hour, context.weekday),
    }


@functools.lru_cache(maxsize=4096)
def _customer_block(segment: str, age_band: str, category: str) -> dict[str, float]:
    return {
        "bias": 1.0,
        f"segment={segment}": 1.0,
        f"age={age_band}": 1.0,
        f"category={category}": 1.0,
        f"segment={segment}×category={category}": 1.0,
        f"age={age_band}×category={category}": 1.0,
    }


@functools.lru_cache(maxsize=1024)
def _phase_block(phase: str, category: str) -> dict[str, float]:
    return {f"phase={phase}": 1.0, f"phase={phase}×category={category}": 1.0}


@functools.lru_cache(maxsize=4096)
def _context_block(channel: str, event_type: str, category: str) -> dict[str, float]:
    return {
        f"channel={channel}×category={category}": 1.0,
        f"event={event_type}×category={category}": 1.0,
    }


@functools.lru_cache(maxsize=256)
def _time_block(hour: int, weekday: int) -> dict[str, float]:
    return {
        "hour_sin": math.sin(2 * math.pi * hour / 24),
        "hour_cos": math.cos(2 * math.pi * hour / 24),
        "weekend": 1.0 if weekday >= 5 else 0.0,
    }
