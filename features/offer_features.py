"""The `default` feature set (`every-field`, the stream's default, adds to it): segment, age
band, category, phase, channel, event, time, their crosses, the offer's exposure, whether the
customer holds the offer's category or accepted it through nbo, and the offer's identity, alone
and crossed with the customer's segment and age band.

The category crosses carry what is known of a new offer on its first impression (what customers
like this one think of its category); the identity crosses learn what sets an offer apart from
the others of its category, for whom.

Pure: it reads the customer, the offer, the moment and the exposure and returns new dicts; it
never changes its inputs. `for_decision` splits each candidate's features in blocks that many
candidates and decisions share and a part of its own, so that a linear ranker scores each block
once.

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
'default/6'
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from features.feature_set import (
    Blocks,
    DecisionParts,
    Exposure,
    Exposures,
    FeatureColumns,
    Features,
    Moment,
    PartsFeatureSet,
)
from features.index import FeatureIndex
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
    the impression counts to tenths, version 5 had no time curve of its own per offer (the
    documented curve, the phase and the days since the trigger crossed with the offer)."""

    def __init__(self) -> None:
        super().__init__("default", 6)

    @property
    def offsets(self) -> tuple[str, ...]:
        return (DOCUMENTED_CURVE,) if self.version >= 6 else ()

    def for_decision(self, customer: Mapping[str, Any], moment: Moment) -> DecisionFeatures:
        # A model pickled before version 5 keeps its feature set's version, and its weights
        # for the exposure counts are per tenth: it is fed tenths still; before version 6 it
        # has no curve of its own per offer
        counts = _COUNTS if self.version >= 5 else _TENTHS
        return DecisionFeatures(
            CustomerPart.of(customer), DecisionContext.of(moment), counts, self.version >= 6
        )


DEFAULT_FEATURES = DefaultFeatures()


# A count of impressions, capped: one more unanswered impression moves the logit by one weight,
# which the prior lets reach a fatigue's size (in tenths, a fatigue's weight was many times the
# prior's width, and the prior held it back)
_COUNTS = tuple(float(count) for count in range(11))
_TENTHS = tuple(count / 10 for count in range(11))  # up to version 4


class DecisionFeatures(DecisionParts):
    """The default features of the candidates of one decision: blocks and an own part.

    Together the parts are exactly `DefaultFeatures.features`. Every block depends on a few
    values only (the customer's segment and age band, the context, the offer's category and
    phase, the offer itself, the exposure counts), so each is built once per process by a
    cached function and is one read-only object for every candidate and decision that has it.
    The own part (days since the trigger, the customer's holdings of the category) is a new
    dict per call.
    """

    def __init__(
        self,
        customer: CustomerPart,
        context: DecisionContext,
        counts: tuple[float, ...],
        curves: bool = True,
    ) -> None:
        self._customer = customer
        self._context = context
        self._counts = counts  # the feature of 0 to 10 impressions
        self._curves = curves  # each offer's time curve: the documented one, and its own
        self._exposure = _exposure_blocks(counts)
        self._time = _time_block(context.hour, context.weekday)
        # this decision's blocks by category, and by phase and category
        self._by_category: dict[str, tuple[Features, Features]] = {}
        self._by_phase: dict[tuple[str, str], Features] = {}

    def parts(self, offer: Mapping[str, Any], exposure: Exposure) -> tuple[Blocks, Features]:
        category, customer = offer["category"], self._customer
        by_category = self._by_category.get(category)
        if by_category is None:
            context = self._context
            by_category = self._by_category[category] = (
                _customer_block(customer.segment, customer.age_band, category),
                _context_block(context.channel, context.event_type, category),
            )
        phase = self._by_phase.get((exposure.phase, category))
        if phase is None:
            phase = self._by_phase[exposure.phase, category] = _phase_block(
                exposure.phase, category
            )
        impressions, unanswered = exposure.impressions, exposure.unanswered
        blocks = (
            by_category[0],
            phase,
            by_category[1],
            self._time,
            _offer_block(offer["offer_id"], customer.segment, customer.age_band),
            self._exposure[max(0, min(impressions, 10))][max(0, min(unanswered, 10))],
        )
        own: Features = {}
        days = exposure.days_since_trigger
        if days is not None:
            own["log_days_since_trigger"] = math.log1p(max(0.0, days)) / 5
        if category in customer.products_held:
            own["holds_category"] = 1.0
        if category in customer.acquired:
            own["accepted_category"] = 1.0
        if self._curves:
            phase_name, days_name = _curve_names(offer["offer_id"], exposure.phase)
            own[DOCUMENTED_CURVE] = documented_curve(offer, exposure.phase)
            own[phase_name] = 1.0
            if days is not None:
                own[days_name] = own["log_days_since_trigger"]
        return blocks, own

    def columns(
        self,
        offers: Sequence[Mapping[str, Any]],
        exposures: Exposures,
        index: FeatureIndex,
        crossed: tuple[str, ...] = (),
    ) -> FeatureColumns:
        """`parts`' features of every candidate as columns of `index`; `crossed`: indicators
        to cross with each offer's category and with the offer too (what `every-field` adds)."""
        index.fresh_if_full()
        customer, context, n, k = self._customer, self._context, len(offers), len(crossed)
        # each offer's right numbers (its category, itself), and each phase's left number, kept
        sides_of: dict[tuple[str, str], tuple[int, ...]] = index.kept("offers", dict)
        sides = np.array([sides_of.get((offer["offer_id"], offer["category"]))
                          or _offer_sides(index, sides_of, offer["offer_id"], offer["category"])
                          for offer in offers], np.int64).reshape(n, 4)  # fmt: skip
        by_category, by_offer = sides[:, 0], sides[:, 1]
        phase_of = _phase_numbers(index)
        phase = np.array([phase_of[phase] for phase in exposures.phase], np.int64)
        # the customer's side of every cross, left numbers: segment, age, (phase), segment,
        # age, channel, event, then the fields; and the customer's own columns
        segment, age = f"segment={customer.segment}", f"age={customer.age_band}"
        mine, own = index.kept(
            ("mine", segment, age, context.channel, context.event_type),
            lambda: _customer_numbers(index, segment, age, context),
        )
        fields = index.left(crossed)
        # Each candidate's slots: 14 features alone (bias, segment, age, category, phase, offer,
        # the numbers), then 7 crosses of the default features and 2 per crossed field, then
        # with each offer's curve its phase and its days crossed with it, and the documented
        # curve alone
        curves = 2 if self._curves else 0  # crosses: each offer's phase, and its days
        crosses = 7 + 2 * k + curves
        left, right = np.empty((n, crosses), np.int64), np.empty((n, crosses), np.int64)
        left[:, :7] = mine
        left[:, 2] = phase
        left[:, 7 : 7 + k] = fields
        left[:, 7 + k : 7 + 2 * k] = fields
        right[:, :5] = by_category[:, None]
        right[:, 5:7] = by_offer[:, None]
        right[:, 7 : 7 + k] = by_category[:, None]
        right[:, 7 + k :] = by_offer[:, None]
        if curves:
            left[:, -2] = phase
            left[:, -1] = index.kept("days", lambda: index.left(["log_days_since_trigger"]))
        documented = 1 if self._curves else 0  # alone: the documented curve, last
        indices = np.empty((n, 14 + crosses + documented), np.int64)
        indices[:, :14] = own
        indices[:, 3] = sides[:, 2]
        indices[:, 4] = index.alone(0, phase)
        indices[:, 5] = sides[:, 3]
        indices[:, 14 : 14 + crosses] = index.crossed(left, right)
        values = np.ones(indices.shape)
        time, counts = self._time, np.asarray(self._counts)
        values[:, 6:9] = (time["hour_sin"], time["hour_cos"], time["weekend"])
        values[:, 9] = counts[np.minimum(np.maximum(exposures.impressions, 0), 10)]
        values[:, 10] = counts[np.minimum(np.maximum(exposures.unanswered, 0), 10)]
        days = np.log1p(np.maximum(exposures.days_since_trigger, 0.0)) / 5
        days[np.isnan(days)] = 0.0  # NaN: no trigger, no feature
        values[:, 11] = days
        held, acquired = customer.products_held, customer.acquired
        values[:, 12:14] = np.array(
            [(offer["category"] in held, offer["category"] in acquired) for offer in offers], float
        ).reshape(n, 2)
        if curves:
            values[:, 13 + crosses] = days
            indices[:, -1] = index.kept("curve", lambda: index.column(DOCUMENTED_CURVE))
            values[:, -1] = [
                0.0 if phase == "primary" else documented_curve(offer, phase)
                for offer, phase in zip(offers, exposures.phase, strict=True)
            ]
        return FeatureColumns(indices, values)


# The phases an exposure can be in
PHASES = ("primary", "secondary", "irrelevant", "negative")

# The feature whose value is the documented time-value curve's share of the offer's value now,
# on the logit's scale: a model takes it as an offset (weight 1, not learned), the prior that
# each offer's own phase and days crosses correct as labels come
DOCUMENTED_CURVE = "documented_curve"
# The documented share of an offer's value outside its interest periods (no trigger seen, or
# past them): the catalogue has none, and this is nbo's default `NBO_IRRELEVANT_VALUE_RATIO`
IRRELEVANT_SHARE = 0.1
_LEAST_SHARE = 1e-3  # a share of 0 (never worth showing) as a finite logit


def documented_curve(offer: Mapping[str, Any], phase: str) -> float:
    """log(the documented curve's share of the offer's value in `phase`): 0 in the primary
    period, log(secondary_value_ratio) in the secondary one, log(IRRELEVANT_SHARE) outside both.

    >>> round(documented_curve({"secondary_value_ratio": 0.5}, "secondary"), 3)
    -0.693
    >>> documented_curve({}, "primary"), round(documented_curve({}, "irrelevant"), 3)
    (0.0, -2.303)
    """
    if phase == "primary":
        return 0.0
    share = offer.get("secondary_value_ratio", 0.5) if phase == "secondary" else IRRELEVANT_SHARE
    return math.log(max(float(share), _LEAST_SHARE))


def _phase_numbers(index: FeatureIndex) -> dict[str, int]:
    """Each phase's left number in crosses."""
    return index.kept(
        "phases",
        lambda: dict(zip(PHASES, index.left([f"phase={p}" for p in PHASES]).tolist(), strict=True)),
    )


def _offer_sides(
    index: FeatureIndex,
    sides_of: dict[tuple[str, str], tuple[int, ...]],
    offer_id: str,
    category: str,
) -> tuple[int, ...]:
    """The right numbers of an offer's category and of the offer, then their columns as
    features alone, kept in `sides_of` (an offer may change its category in a new version: both
    are the key)."""
    numbers = index.right([f"category={category}", f"offer={offer_id}"])
    sides = (*numbers.tolist(), *index.alone(1, numbers).tolist())
    sides_of[offer_id, category] = sides
    return sides


def _customer_numbers(
    index: FeatureIndex, segment: str, age: str, context: DecisionContext
) -> tuple[np.ndarray, np.ndarray]:
    """The left numbers of the customer's side of the default crosses (the phase's slot, 2, is
    filled per candidate), and the 14 columns of the features alone (those of the category, the
    phase and the offer, 3 to 5, are filled per candidate)."""
    segment_age = index.left([segment, age])
    channel_event = index.left([f"channel={context.channel}", f"event={context.event_type}"])
    left = np.array([*segment_age, -1, *channel_event, *segment_age], np.int64)
    own = np.zeros(14, np.int64)
    own[:3] = index.columns(["bias", segment, age])
    own[6:14] = index.columns(_NUMBERS)
    return left, own


# The features whose values are numbers (the rest are indicators, 1.0), in their columns' order
_NUMBERS = (
    "hour_sin",
    "hour_cos",
    "weekend",
    "impressions",
    "unanswered",
    "log_days_since_trigger",
    "holds_category",
    "accepted_category",
)


# Each block below is cached on the few values it depends on, so its names are formatted once
# per process, not once per candidate; each is read-only.


@functools.lru_cache(maxsize=65536)
def _curve_names(offer_id: str, phase: str) -> tuple[str, str]:
    """The names of an offer's own phase and days since its trigger."""
    return f"phase={phase}×offer={offer_id}", f"log_days_since_trigger×offer={offer_id}"


@functools.lru_cache(maxsize=65536)
def _offer_block(offer_id: str, segment: str, age_band: str) -> Features:
    offer = f"offer={offer_id}"
    return {offer: 1.0, f"segment={segment}×{offer}": 1.0, f"age={age_band}×{offer}": 1.0}


@functools.cache
def _exposure_blocks(counts: tuple[float, ...]) -> tuple[tuple[Features, ...], ...]:
    """The exposure block of 0 to 10 impressions (the first index) and unanswered ones."""
    return tuple(
        tuple({"impressions": impressions, "unanswered": unanswered} for unanswered in counts)
        for impressions in counts
    )


@functools.lru_cache(maxsize=4096)
def _customer_block(segment: str, age_band: str, category: str) -> Features:
    return {
        "bias": 1.0,
        f"segment={segment}": 1.0,
        f"age={age_band}": 1.0,
        f"category={category}": 1.0,
        f"segment={segment}×category={category}": 1.0,
        f"age={age_band}×category={category}": 1.0,
    }


@functools.lru_cache(maxsize=1024)
def _phase_block(phase: str, category: str) -> Features:
    return {f"phase={phase}": 1.0, f"phase={phase}×category={category}": 1.0}


@functools.lru_cache(maxsize=4096)
def _context_block(channel: str, event_type: str, category: str) -> Features:
    return {
        f"channel={channel}×category={category}": 1.0,
        f"event={event_type}×category={category}": 1.0,
    }


@functools.lru_cache(maxsize=256)
def _time_block(hour: int, weekday: int) -> Features:
    return {
        "hour_sin": math.sin(2 * math.pi * hour / 24),
        "hour_cos": math.cos(2 * math.pi * hour / 24),
        "weekend": 1.0 if weekday >= 5 else 0.0,
    }
