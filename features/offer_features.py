"""The `default` feature set (`every-field`, the stream's default, adds to it): segment, age
band, category, phase, channel, event, time, their crosses, the offer's exposure, whether the
customer holds the offer's category or accepted it through nbo, and the offer's identity, alone
and crossed with the customer's segment and age band.

The category crosses carry what is known of a new offer on its first impression (what customers
like this one think of its category); the identity crosses learn what sets an offer apart from
the others of its category, for whom.

Pure: it reads the customer, the offer, the moment and the exposure and returns new dicts; it
never changes its inputs. `for_decision` splits each candidate's features in a part shared by
the candidates of a decision and a part of its own, so that a linear ranker scores the shared
part once per decision.

>>> from datetime import datetime, UTC
>>> moment = Moment("travel_booking", "web", datetime(2026, 3, 2, 9, tzinfo=UTC))
>>> customer = {"segment": "mass", "age": 34, "products_held": ["card"]}
>>> x = DEFAULT_FEATURES.features(customer, {"offer_id": "ins-1", "category": "insurance"},
...                               moment, Exposure(0.5, "primary", impressions=1, unanswered=1))
>>> x["segment=mass×category=insurance"], x["event=travel_booking×category=insurance"]
(1.0, 1.0)
>>> x["offer=ins-1"], x["segment=mass×offer=ins-1"], x["age=25-39×offer=ins-1"]
(1.0, 1.0, 1.0)
>>> "holds_category" in x
False
>>> DEFAULT_FEATURES.label
'default/5'
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from features.feature_set import DecisionParts, Exposure, Features, Moment, PartsFeatureSet
from features.values import holdings


@dataclass(frozen=True)
class DecisionContext:
    hour: int
    weekday: int
    channel: str
    event_type: str

    @classmethod
    def of(cls, moment: Moment) -> DecisionContext:
        return cls(
            hour=moment.timestamp.hour,
            weekday=moment.timestamp.weekday(),
            channel=moment.channel,
            event_type=moment.event_type,
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
    products_held: frozenset[str]  # as the CRM says
    acquired: frozenset[str]  # categories accepted through nbo since

    @classmethod
    def of(cls, customer: Mapping[str, Any]) -> CustomerPart:
        held, acquired = holdings(customer)
        return cls(
            segment=str(customer.get("segment") or "unknown"),
            age_band=age_band(float(customer.get("age") or 0)),
            products_held=frozenset(held),
            acquired=frozenset(acquired),
        )


class DefaultFeatures(PartsFeatureSet):
    """Version 1 was the same without the offer's identity, version 2 without its crosses,
    version 3 read a category accepted through nbo as one the CRM says is held, version 4 scaled
    the impression counts to tenths."""

    def __init__(self) -> None:
        super().__init__("default", 5)

    def for_decision(self, customer: Mapping[str, Any], moment: Moment) -> DecisionFeatures:
        # A model pickled before version 5 keeps its feature set's version, and its weights
        # for the exposure counts are per tenth: it is fed tenths still
        counts = _COUNTS if self.version >= 5 else _TENTHS
        return DecisionFeatures(CustomerPart.of(customer), DecisionContext.of(moment), counts)


DEFAULT_FEATURES = DefaultFeatures()


# A count of impressions, capped: one more unanswered impression moves the logit by one weight,
# which the prior lets reach a fatigue's size (in tenths, a fatigue's weight was many times the
# prior's width, and the prior held it back)
_COUNTS = tuple(float(count) for count in range(11))
_TENTHS = tuple(count / 10 for count in range(11))  # up to version 4


class DecisionFeatures(DecisionParts):
    """The default features of the candidates of one decision, in two parts per candidate.

    Together the two parts are exactly `DefaultFeatures.features`. The shared part depends only
    on the customer, the context, the offer's category and its phase, so the candidates of a
    decision have a few of them: each is built once, is one read-only object for all candidates
    that have it, and a linear model scores it once per decision instead of once per candidate.
    The own part is a new dict per call.
    """

    def __init__(
        self, customer: CustomerPart, context: DecisionContext, counts: tuple[float, ...]
    ) -> None:
        self._customer = customer
        self._context = context
        self._counts = counts  # the feature of 0 to 10 impressions
        self._shared: dict[tuple[str, str], dict[str, float]] = {}

    def parts(self, offer: Mapping[str, Any], exposure: Exposure) -> tuple[Features, Features]:
        category, phase = offer["category"], exposure.phase
        shared = self._shared.get((category, phase))
        if shared is None:
            shared = _categorical(self._customer, category, phase, self._context)
            self._shared[category, phase] = shared
        offer_id, customer = offer["offer_id"], self._customer
        own = {
            **_offer_block(offer_id, customer.segment, customer.age_band),
            "impressions": self._counts[max(0, min(exposure.impressions, 10))],
            "unanswered": self._counts[max(0, min(exposure.unanswered, 10))],
        }
        days = exposure.days_since_trigger
        if days is not None:
            own["log_days_since_trigger"] = math.log1p(max(0.0, days)) / 5
        if category in customer.products_held:
            own["holds_category"] = 1.0
        if category in customer.acquired:
            own["accepted_category"] = 1.0
        return shared, own


@functools.lru_cache(maxsize=65536)
def _offer_block(offer_id: str, segment: str, age_band: str) -> dict[str, float]:
    """Read-only, as the other cached blocks: the own part is a new dict built from it."""
    offer = f"offer={offer_id}"
    return {offer: 1.0, f"segment={segment}×{offer}": 1.0, f"age={age_band}×{offer}": 1.0}


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
