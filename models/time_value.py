"""An offer's value as time passes since its trigger: the article's time-value curve.

    value
      │■■■■■■■■■■■ primary
      │           ■■■■■■■■■■■■ secondary (secondary_value_ratio × value)
      │                        ······· irrelevant (irrelevant_value_ratio × value, 0 by default)
    0 ┼──────────────────────────────────┬──────────── days since trigger
      │                    negative impact: negative_value_ratio × value ■■■■■■■

Unanswered impressions move an offer towards negative impact (fatigue): each one advances the
offer's clock by `fatigue_share` of its negative-impact day. An offer with no trigger yet is
irrelevant: not harmful, and worth `irrelevant_value_ratio` of its value if accepted outside any
interest period. With the ratio 0 it is worth nothing now and is never shown; nbo's setting
`NBO_IRRELEVANT_VALUE_RATIO` (0.1) ranks such "cold" offers by P(accept) × a tenth of their value,
so that with no open interest the offer a customer is likeliest to take, weighed by what it
earns, is shown (never an accidental first one).

>>> profile = TimeValueProfile(value=100, primary_interest_days=2, secondary_interest_days=5,
...                            negative_impact_days=10)
>>> value_now(profile, days_since_trigger=1.0)
(100.0, 'primary')
>>> value_now(profile, days_since_trigger=3.0)
(50.0, 'secondary')
>>> value_now(profile, days_since_trigger=8.0)
(0.0, 'irrelevant')
>>> value_now(profile, days_since_trigger=1.0, unanswered_impressions=4)  # fatigue
(-50.0, 'negative')
>>> value_now(profile, days_since_trigger=None)
(0.0, 'irrelevant')
>>> cold = TimeValueProfile(100, 2, 5, 10, irrelevant_value_ratio=0.1)
>>> value_now(cold, days_since_trigger=None)
(10.0, 'irrelevant')
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Literal

Phase = Literal["primary", "secondary", "irrelevant", "negative"]
Objective = Literal["value-curve", "learned-curve", "expected-value", "time-weighted"]
OBJECTIVES: tuple[Objective, ...] = (
    "value-curve",
    "learned-curve",
    "expected-value",
    "time-weighted",
)
SECONDS_PER_DAY = 86_400.0  # event times are epoch seconds; interest periods are days
DEFAULT_FATIGUE_SHARE = 0.25


@dataclass(frozen=True)
class TimeValueProfile:
    value: float
    primary_interest_days: float
    secondary_interest_days: float
    negative_impact_days: float
    secondary_value_ratio: float = 0.5
    negative_value_ratio: float = -0.5
    irrelevant_value_ratio: float = 0.0

    @classmethod
    def of(cls, offer: dict[str, Any], irrelevant_value_ratio: float = 0.0) -> TimeValueProfile:
        return cls(
            value=offer["value"],
            primary_interest_days=offer["primary_interest_days"],
            secondary_interest_days=offer["secondary_interest_days"],
            negative_impact_days=offer["negative_impact_days"],
            secondary_value_ratio=offer["secondary_value_ratio"],
            negative_value_ratio=offer["negative_value_ratio"],
            irrelevant_value_ratio=irrelevant_value_ratio,
        )

    @functools.cached_property
    def value_in(self) -> dict[Phase, float]:
        """The value of showing the offer in each phase (worked out once: it is read per
        candidate of every decision)."""
        value = float(self.value)
        return {
            "primary": value,
            "secondary": value * float(self.secondary_value_ratio),
            "irrelevant": value * float(self.irrelevant_value_ratio),
            "negative": value * float(self.negative_value_ratio),
        }


def phase_at(profile: TimeValueProfile, days: float | None) -> Phase:
    if days is None:
        return "irrelevant"
    if days >= profile.negative_impact_days:
        return "negative"
    if days < profile.primary_interest_days:
        return "primary"
    if days < profile.primary_interest_days + profile.secondary_interest_days:
        return "secondary"
    return "irrelevant"


def value_now(
    profile: TimeValueProfile,
    days_since_trigger: float | None,
    unanswered_impressions: int = 0,
    fatigue_share: float = DEFAULT_FATIGUE_SHARE,
) -> tuple[float, Phase]:
    """(value of showing the offer now, its interest phase)."""
    days = moved_days(profile, days_since_trigger, unanswered_impressions, fatigue_share)
    phase = phase_at(profile, days)
    return profile.value_in[phase], phase


def moved_days(
    profile: TimeValueProfile,
    days_since_trigger: float | None,
    unanswered_impressions: int = 0,
    fatigue_share: float = DEFAULT_FATIGUE_SHARE,
) -> float | None:
    """Where the offer stands on its curve, in days: the days since its trigger moved on by
    its unanswered impressions (None: no trigger seen, and not ignored enough to annoy).

    >>> profile = TimeValueProfile(100, 2, 5, 10)
    >>> moved_days(profile, 1.0), moved_days(profile, 1.0, 2), moved_days(profile, None, 4)
    (1.0, 6.0, 10)
    """
    if days_since_trigger is not None:
        fatigue_days = unanswered_impressions * fatigue_share * profile.negative_impact_days
        return max(0.0, days_since_trigger) + fatigue_days
    if unanswered_impressions * fatigue_share >= 1.0:
        return profile.negative_impact_days  # ignored so often that it now annoys
    return None


def earned_now(profile: TimeValueProfile, phase: Phase, objective: Objective) -> float:
    """What an acceptance of the offer earns now, under `objective`; the ranker's priority is
    P(accept) × this × business lever, and an offer that earns nothing or less is not shown.

    - `expected-value` (the best choice of `nbo demo`'s channel): the offer's value in any
      phase before its point of negative impact, past it a harm (`negative_value_ratio` ×
      value, so never shown). The interest phase changes how likely an acceptance is, not what
      it earns, and the model's P(accept) learns that from the phase: the time value is
      counted once, in P(accept).
    - `value-curve` (the ranker's default): the value curve's value now (`value_now`), and the
      ranker reads P(accept) as if the offer were in its primary period: the time value is
      counted once, by the curve. The model still learns from the phase each offer was shown
      in, so that its other weights do not take the phase's part.
    - `learned-curve`: the offer's value, as `expected-value`, with a P(accept) of the moment
      whose time curve starts as the documented one (an offset in the model, see
      `features.offer_features.DOCUMENTED_CURVE`) and is corrected per offer from the labels:
      the curve is a prior the customers can overrule.
    - `time-weighted`: the value curve's value now, with P(accept) in the phase the offer is
      in: with a model that learns the phase, the phase is counted twice, and an offer in its
      primary period beats a likelier one outside it.

    >>> profile = TimeValueProfile(value=100, primary_interest_days=2, secondary_interest_days=5,
    ...                            negative_impact_days=10, irrelevant_value_ratio=0.1)
    >>> [earned_now(profile, phase, "expected-value") for phase in ("primary", "secondary",
    ...                                                             "irrelevant", "negative")]
    [100.0, 100.0, 100.0, -50.0]
    >>> [earned_now(profile, phase, "time-weighted") for phase in ("primary", "secondary",
    ...                                                            "irrelevant", "negative")]
    [100.0, 50.0, 10.0, -50.0]
    >>> earned_now(profile, "secondary", "value-curve")
    50.0
    """
    if objective not in ("expected-value", "learned-curve") or phase == "negative":
        return profile.value_in[phase]
    return float(profile.value)
