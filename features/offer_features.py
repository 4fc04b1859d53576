"""Features of one candidate offer for one customer at one moment.

Pure functions: they take the customer view, the offer and the decision context and return a
new `dict[str, float]`; they never change their inputs.

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
    category = offer["category"]
    features = {
        **_categorical(customer, category, phase, context),
        "impressions": float(min(impressions, 10)) / 10,
        "unanswered": float(min(unanswered, 10)) / 10,
    }
    if days_since_trigger is not None:
        features["log_days_since_trigger"] = math.log1p(max(0.0, days_since_trigger)) / 5
    if category in customer.products_held:
        features["holds_category"] = 1.0
    return features


@functools.lru_cache(maxsize=4096)
def _categorical(
    customer: CustomerPart, category: str, phase: str, context: DecisionContext
) -> dict[str, float]:
    """The features that depend only on hashable parts: the candidates of one decision share
    a few categories and phases, so the feature names are formatted once for all of them.
    Callers copy the result; it is never changed."""
    return {
        "bias": 1.0,
        f"segment={customer.segment}": 1.0,
        f"age={customer.age_band}": 1.0,
        f"category={category}": 1.0,
        f"segment={customer.segment}×category={category}": 1.0,
        f"age={customer.age_band}×category={category}": 1.0,
        f"phase={phase}": 1.0,
        f"phase={phase}×category={category}": 1.0,
        f"channel={context.channel}×category={category}": 1.0,
        f"event={context.event_type}×category={category}": 1.0,
        "hour_sin": math.sin(2 * math.pi * context.hour / 24),
        "hour_cos": math.cos(2 * math.pi * context.hour / 24),
        "weekend": 1.0 if context.weekday >= 5 else 0.0,
    }
