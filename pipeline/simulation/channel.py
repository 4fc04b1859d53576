"""The simulated channel: shows each decision's first offer and answers as the customer would.

It knows each valid candidate's true P(accept) (from the world), so it also reports, per
decision, what the best choice (the oracle) and a uniformly random valid offer would have given,
and where the value lost to the best choice went (`RegretParts`). The best choice is the
expected value of the moment (`models.time_value.earned_now`'s `expected-value`): P(accept) ×
value × business lever, the interest phase counted once (in the true P(accept)), past the point
of negative impact never shown.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, Protocol

from models.time_value import (
    Objective,
    Phase,
    TimeValueProfile,
    earned_now,
    moved_days,
    phase_at,
)

OBJECTIVE: Objective = "expected-value"  # what the best choice maximises


class Customers(Protocol):
    """What the channel needs of a simulated world: the hidden truth."""

    def p_accept(
        self,
        customer_id: str,
        offer_id: str,
        category: str,
        phase: str,
        unanswered: int,
        days_since_trigger: float | None = None,
    ) -> float:
        """The true P(accept) now: `phase` as the catalogue documents it, `days_since_trigger`
        where the offer stands on its curve (moved on by fatigue; None: no trigger seen)."""
        ...


@dataclass(frozen=True)
class Truth:
    """The true P(accept) of a candidate and the expected value of showing it."""

    p_accept: float
    value: float  # p_accept × what an acceptance earns now × lever


NOTHING = Truth(0.0, 0.0)


@dataclass(frozen=True)
class RegretParts:
    """Where one decision's expected value lost to the best choice went, step by step along the
    decision's path; the parts add up to the loss (a part is negative when a step happened to
    gain). `model` is the offer the ranker's own P(accept) makes best under the objective, among
    all the candidates it scored (the decision's `best_by_expected_value`); `greedy` the one its
    priority makes best."""

    contact_policy: float = 0.0  # the best candidate − the best the contact policy allows
    wrong_category: float = 0.0  # the best allowed − `model`, when in another category
    wrong_offer: float = 0.0  # the best allowed − `model`, when in the same category
    time_weighting: float = 0.0  # `model` − `greedy`: the ranker weighing value otherwise
    exploration: float = 0.0  # `greedy` − the offer shown

    @property
    def total(self) -> float:
        return float(sum(getattr(self, part.name) for part in fields(self)))

    @staticmethod
    def summed(many: Iterable[RegretParts]) -> RegretParts:
        totals = dict.fromkeys((part.name for part in fields(RegretParts)), 0.0)
        for parts in many:
            for name in totals:
                totals[name] += getattr(parts, name)
        return RegretParts(**totals)


@dataclass
class Outcome:
    """What the channel did for one decision, and what others would have got."""

    interactions: list[dict[str, Any]]
    shown: bool
    accepted: bool
    learned: Truth  # the offer the ranker put first
    oracle: Truth  # the best choice the contact policy allows, by expected value
    random: Truth  # the mean over the valid offers
    shown_offer: str | None = None
    oracle_offer: str | None = None
    regret: RegretParts = field(default_factory=RegretParts)


@dataclass(frozen=True)
class WindowFigures:
    """Means per shown decision over the last `decisions` shown decisions: the learned policy's
    (realised acceptance, and the expected acceptance and value of what it chose), the oracle's
    (the best choice knowing the truth) and a random valid offer's; and the value lost to the
    best candidate, part by part (`regret`, means per decision)."""

    decisions: int
    acceptance: float
    expected_acceptance: float
    oracle_acceptance: float
    random_acceptance: float
    expected_value: float
    oracle_expected_value: float
    random_expected_value: float
    regret: RegretParts = field(default_factory=RegretParts)

    @property
    def value_vs_oracle(self) -> float:
        """The share of the best choice's expected value the learned policy got (0 if none)."""
        best = self.oracle_expected_value
        return self.expected_value / best if best else 0.0

    @property
    def value_vs_random(self) -> float:
        """How many times a random valid offer's expected value it got (0 if none)."""
        random = self.random_expected_value
        return self.expected_value / random if random else 0.0

    def regret_shares(self) -> dict[str, float]:
        """Each part's share of the value lost to the best candidate."""
        total = self.regret.total
        return {
            part.name: getattr(self.regret, part.name) / total if total else 0.0
            for part in fields(RegretParts)
        }


@dataclass(frozen=True)
class LaunchFigures:
    """How an offer launched mid-run was found: of the decisions within the scoreboard's window
    after its launch where it was the best choice, the share where the ranker put it first."""

    offer_id: str
    at_decision: int  # decisions made before the launch
    decisions_best: int
    put_first_when_best: float


@dataclass
class Scoreboard:
    """Running figures of the loop, overall and over the last `window` shown decisions."""

    window: int = 10_000
    decisions: int = 0
    shown: int = 0
    accepted: int = 0
    regret: float = 0.0  # expected value the oracle would have added
    _recent: deque[tuple[tuple[float, ...], RegretParts]] = field(default_factory=deque)
    # a launched offer: over the `window` decisions after its launch, how often it was the best
    # choice, and how often of those the ranker put it first
    launched: str | None = None
    launched_at: int = 0  # decisions made before the launch
    launched_best: int = 0
    launched_first_when_best: int = 0

    def launch(self, offer_id: str) -> None:
        self.launched, self.launched_at = offer_id, self.decisions

    def add(self, outcome: Outcome, by_the_model: bool = True) -> None:
        """Count a decision; only the model's (the treatment group's) count in the figures."""
        self.decisions += 1
        if (
            by_the_model
            and self.launched is not None
            and outcome.oracle_offer == self.launched
            and self.decisions - self.launched_at <= self.window
        ):
            self.launched_best += 1
            self.launched_first_when_best += outcome.shown_offer == self.launched
        if not outcome.shown or not by_the_model:
            return
        self.shown += 1
        self.accepted += int(outcome.accepted)
        self.regret += outcome.oracle.value - outcome.learned.value
        figures = (
            float(outcome.accepted),
            outcome.learned.p_accept,
            outcome.oracle.p_accept,
            outcome.random.p_accept,
            outcome.learned.value,
            outcome.oracle.value,
            outcome.random.value,
        )
        self._recent.append((figures, outcome.regret))
        if len(self._recent) > self.window:
            self._recent.popleft()

    def recent(self) -> WindowFigures:
        """Acceptance and expected value per shown decision over the window, for the learned
        policy (realised and expected), the oracle and a random valid offer; the regret parts."""
        n = len(self._recent) or 1
        means = [sum(row[i] for row, _ in self._recent) / n for i in range(7)]
        summed = RegretParts.summed(parts for _, parts in self._recent)
        per_decision = RegretParts(**{p.name: getattr(summed, p.name) / n for p in fields(summed)})
        acceptance, expected, oracle, random, value, oracle_value, random_value = means
        return WindowFigures(len(self._recent), acceptance, expected, oracle, random, value,
                             oracle_value, random_value, per_decision)  # fmt: skip

    def launch_figures(self) -> LaunchFigures | None:
        """How the launched offer was found, if one was launched."""
        if self.launched is None:
            return None
        share = self.launched_first_when_best / self.launched_best if self.launched_best else 0.0
        return LaunchFigures(self.launched, self.launched_at, self.launched_best, share)


class Channel:
    """Shows the first offer of each decision and answers as the simulated customer would."""

    def __init__(self, world: Customers, offers: dict[str, dict[str, Any]], seed: int = 11) -> None:
        self._world = world
        self._offers = offers
        self._rng = random.Random(seed)
        self._count = 0

    def add_offer(self, offer: dict[str, Any]) -> None:
        """An offer loaded after the start (the μ-products learn of it from the offers topic)."""
        self._offers[offer["offer_id"]] = offer

    def _truth(self, customer_id: str, candidate: dict[str, Any]) -> Truth:
        offer = self._offers[candidate["offer_id"]]
        unanswered = candidate.get("unanswered_impressions", 0)
        profile = TimeValueProfile.of(offer)
        days = moved_days(profile, candidate.get("days_since_trigger"), unanswered)
        phase = phase_at(profile, days)
        p = self._world.p_accept(
            customer_id, candidate["offer_id"], offer["category"], phase, unanswered, days
        )
        return Truth(p, p * earned(offer, phase))

    def _showable(self, candidate: dict[str, Any]) -> bool:
        """What any policy may show: the contact policy applies to the oracle and baseline too."""
        limit = self._offers[candidate["offer_id"]].get("max_impressions")
        return limit is None or candidate.get("impressions", 0) < limit

    def respond(self, valid: dict[str, Any], decision: dict[str, Any]) -> Outcome:
        at = datetime.fromisoformat(decision["timestamp"])
        customer_id = decision["customer_id"]
        every = {c["offer_id"]: (self._truth(customer_id, c), c) for c in valid["candidates"]}
        # as the ranker: an offer worth nothing or less now is never shown
        worth_showing = {oid: truth for oid, (truth, _) in every.items() if truth.value > 0}
        truths = {oid: t for oid, t in worth_showing.items() if self._showable(every[oid][1])}
        oracle_offer = _best(truths)
        oracle = truths[oracle_offer] if oracle_offer is not None else NOTHING
        n = len(truths) or 1
        random_choice = Truth(
            sum(t.p_accept for t in truths.values()) / n, sum(t.value for t in truths.values()) / n
        )
        if not decision["offers"]:
            return Outcome([], False, False, NOTHING, oracle, random_choice, None, oracle_offer)
        shown = decision["offers"][0]["offer_id"]
        learned = truths.get(shown, NOTHING)
        regret = self._regret(worth_showing, truths, oracle_offer, decision["offers"],
                              decision.get("best_by_expected_value"))  # fmt: skip
        p_shown = learned.p_accept
        interactions = [self._interaction(decision, shown, "impression", at + timedelta(seconds=1))]
        draw = self._rng.random()
        accepted = draw < p_shown
        later = at + timedelta(minutes=self._rng.uniform(1, 360))
        if accepted:
            interactions.append(self._interaction(decision, shown, "accept", later))
        elif draw < p_shown + (1 - p_shown) * 0.3:
            interactions.append(self._interaction(decision, shown, "dismiss", later))
        # otherwise no response: the ranker labels it after the offer's response window
        return Outcome(
            interactions,
            True,
            accepted,
            learned,
            oracle,
            random_choice,
            shown,
            oracle_offer,
            regret,
        )

    def _regret(
        self,
        worth_showing: dict[str, Truth],
        allowed: dict[str, Truth],
        best_allowed: str | None,
        emitted: list[dict[str, Any]],
        best_by_expected_value: str | None,
    ) -> RegretParts:
        """The loss of the offer shown against the best candidate, split along the decision's
        path: contact policy, the model's own estimates, its weighing of value, exploration."""

        def value(offer_id: str | None) -> float:
            return allowed[offer_id].value if offer_id in allowed else 0.0

        best = worth_showing[_best(worth_showing) or ""].value if worth_showing else 0.0
        greedy = max(emitted, key=lambda offer: offer["score"])["offer_id"]
        model = best_by_expected_value or self._best_emitted(emitted)
        same_category = best_allowed is not None and (
            self._offers[model]["category"] == self._offers[best_allowed]["category"]
        )
        missed = value(best_allowed) - value(model)
        return RegretParts(
            contact_policy=best - value(best_allowed),
            wrong_category=0.0 if same_category else missed,
            wrong_offer=missed if same_category else 0.0,
            time_weighting=value(model) - value(greedy),
            exploration=value(greedy) - value(emitted[0]["offer_id"]),
        )

    def _best_emitted(self, emitted: list[dict[str, Any]]) -> str:
        """Of the offers a decision emitted, the one its P(accept) makes worth the most: the
        model's own choice, for decisions that do not name it among all their candidates."""
        offers = self._offers
        return str(
            max(
                emitted,
                key=lambda o: o["p_accept"] * earned(offers[o["offer_id"]], o["phase"]),
            )["offer_id"]
        )

    def _interaction(
        self, decision: dict[str, Any], offer_id: str, outcome: str, at: datetime
    ) -> dict[str, Any]:
        self._count += 1
        return {
            "interaction_id": f"I{self._count:08d}",
            "decision_id": decision["decision_id"],
            "customer_id": decision["customer_id"],
            "offer_id": offer_id,
            "channel": decision["channel"],
            "outcome": outcome,
            "timestamp": at.isoformat(),
        }


def earned(offer: dict[str, Any], phase: Phase) -> float:
    """What an acceptance of `offer` in `phase` earns under the best choice's objective, lever
    included."""
    profile = TimeValueProfile.of(offer)
    return earned_now(profile, phase, OBJECTIVE) * float(offer.get("business_lever", 1.0))


def _best(truths: dict[str, Truth]) -> str | None:
    return max(truths, key=lambda offer_id: truths[offer_id].value, default=None)
