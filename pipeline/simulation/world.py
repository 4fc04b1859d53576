"""A simulated bank's customers and channels, for the closed-loop demo and its tests.

The `World` is a seeded population with *hidden* preferences: a base acceptance probability per
segment and offer category, a personal taste per customer and category, each offer's own appeal
within its category (by segment and age band: two cards are not alike, and not alike to
everyone), and how interest moves with time since a trigger and with unanswered impressions.
Journey events come from it (trigger events that open interest in related categories, and
background noise). `World.launch` brings a new offer that customers like better than every
other of its category (`NEW_OFFER`, which the demo loads mid-run).

The `Channel` shows the first offer of each decision and draws the customer's response from
the true probability. Because it knows that probability for every valid candidate, it also
reports, per decision, what the best possible choice (the oracle) and a uniformly random valid
offer (the baseline) would have given. The oracle pursues the ranker's own objective, the
expected value P(accept) × value now × lever, with the true P(accept); acceptance and expected
value are reported for all three.

>>> world = World(customers=50, seed=1)
>>> len(world.customer_records())
50
>>> world.events(3)[0]["event_id"]
'S00000000'
>>> customer = world.customers[0].customer_id
>>> world.appeal(customer, "card-01") != world.appeal(customer, "card-02")
True
>>> world.launch(NEW_OFFER["offer_id"])
>>> world.appeal(customer, NEW_OFFER["offer_id"]) > max(
...     world.appeal(customer, f"card-0{i}") for i in range(1, 6))
True
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from models.time_value import TimeValueProfile, value_now

START = datetime(2026, 11, 1, tzinfo=UTC)
SECONDS_PER_EVENT = 30.0  # simulated time between two events of the population

# P(accept) of an offer shown in its primary interest period, by segment and category
BASE_ACCEPTANCE: dict[str, dict[str, float]] = {
    "student": {
        "card": 0.30,
        "loan": 0.12,
        "savings": 0.05,
        "insurance": 0.08,
        "investment": 0.01,
        "mortgage": 0.01,
    },
    "mass": {
        "card": 0.10,
        "loan": 0.18,
        "mortgage": 0.08,
        "savings": 0.12,
        "insurance": 0.14,
        "investment": 0.03,
    },
    "affluent": {
        "investment": 0.25,
        "mortgage": 0.18,
        "savings": 0.10,
        "card": 0.06,
        "insurance": 0.10,
        "loan": 0.04,
    },
    "private": {
        "investment": 0.35,
        "insurance": 0.15,
        "mortgage": 0.10,
        "savings": 0.06,
        "card": 0.04,
        "loan": 0.02,
    },
    "small_business": {
        "loan": 0.28,
        "card": 0.15,
        "insurance": 0.10,
        "savings": 0.06,
        "investment": 0.05,
        "mortgage": 0.04,
    },
}
PHASE_FACTOR = {"primary": 1.0, "secondary": 0.5, "irrelevant": 0.12, "negative": 0.03}
FATIGUE = 0.7  # each unanswered impression multiplies the probability by this
TRIGGERS: dict[str, tuple[str, ...]] = {
    "mortgage": ("mortgage_calculator_view", "property_search"),
    "loan": ("loan_calculator_view", "car_configurator_view", "checkout_declined"),
    "card": ("travel_booking", "card_declined", "salary_increase"),
    "savings": ("large_deposit", "salary_increase", "deposit_maturing"),
    "investment": ("large_deposit", "deposit_maturing", "contract_ending"),
    "insurance": ("travel_booking", "property_search", "car_configurator_view"),
}
BACKGROUND = ("app_login", "page_view", "branch_visit", "address_change")
SEGMENT_MIX = (
    "student",
    "mass",
    "mass",
    "mass",
    "affluent",
    "affluent",
    "private",
    "small_business",
)
INCOME = {
    "student": 9000,
    "mass": 35000,
    "affluent": 80000,
    "private": 220000,
    "small_business": 65000,
}
EVENT_CHANNELS = ("mobile_app", "mobile_app", "web", "web", "email", "branch")
# An offer's appeal within its category multiplies P(accept): e^(a + b), a per segment and b per
# age band, each drawn N(0, APPEAL_SPREAD) for every offer, the sum kept within APPEAL_RANGE
APPEAL_SPREAD = 0.45
APPEAL_RANGE = (-1.2, 0.4)
LAUNCHED_APPEAL = 2.0  # a launched offer's: above every other offer's e^0.4 = 1.49
# The offer `nbo demo` launches mid-run: a card with the terms of the others, liked best of all
NEW_OFFER: dict[str, Any] = {
    "offer_id": "card-06",
    "name": "Everyday Rewards Card",
    "category": "card",
    "value": 165.0,
    "business_lever": 1.0,
    "triggers": ["travel_booking", "card_declined", "salary_increase"],
    "primary_interest_days": 2.0,
    "secondary_interest_days": 7.0,
    "negative_impact_days": 21.0,
    "secondary_value_ratio": 0.5,
    "negative_value_ratio": -0.3,
    "channels": ["mobile_app", "web", "email", "branch", "sms", "call_center"],
    "valid_from": "2026-01-01",
    "valid_to": "2027-12-31",
    "stock": None,
    "max_impressions": 3,
    "contact_window_days": 14,
    "response_window_hours": 48,
}


@dataclass
class SimCustomer:
    customer_id: str
    segment: str
    age: int
    taste: dict[str, float]  # personal multiplier per category, hidden


class World:
    """The simulated population. Seeded: the same seed gives the same customers and events."""

    def __init__(self, customers: int = 2000, seed: int = 7) -> None:
        self.seed = seed
        self._rng = random.Random(seed)
        self.customers = [self._customer(index) for index in range(customers)]
        self._by_id = {c.customer_id: c for c in self.customers}
        self._clock = START
        self._count = 0
        self._appeal: dict[tuple[str, str, str], float] = {}
        self._launched: set[str] = set()

    def _customer(self, index: int) -> SimCustomer:
        rng = self._rng
        segment = rng.choice(SEGMENT_MIX)
        age = rng.randint(18, 26) if segment == "student" else rng.randint(25, 64)
        taste = {category: math.exp(rng.gauss(0.0, 0.3)) for category in TRIGGERS}
        return SimCustomer(f"S{index:05d}", segment, age, taste)

    def customer_records(self) -> list[dict[str, Any]]:
        """CRM profiles for the `customers` topic (no hidden preference in them)."""
        rng = random.Random(self.seed + 1)
        return [
            {
                "customer_id": c.customer_id,
                "age": c.age,
                "segment": c.segment,
                "region": rng.choice(["capital", "north", "south", "east", "west"]),
                "income": float(INCOME[c.segment] * rng.uniform(0.8, 1.3)),
                "tenure_years": round(rng.uniform(0.5, 20), 1),
                "products_held": [],
                "consents": ["mobile_app", "web", "email", "branch"],
                "updated_at": (START - timedelta(days=30)).isoformat(),
            }
            for c in self.customers
        ]

    def _event_type(self, customer: SimCustomer) -> str:
        if self._rng.random() < 0.35:
            return self._rng.choice(BACKGROUND)
        # customers look at what they care about: triggers follow hidden preference
        weights = {
            category: BASE_ACCEPTANCE[customer.segment][category] * customer.taste[category]
            for category in TRIGGERS
        }
        category = self._rng.choices(list(weights), weights=list(weights.values()))[0]
        return self._rng.choice(TRIGGERS[category])

    def events(self, count: int, gap: float = SECONDS_PER_EVENT) -> list[dict[str, Any]]:
        """The next `count` journey events of the population, `gap` seconds apart in time."""
        out = []
        for _ in range(count):
            customer = self._rng.choice(self.customers)
            self._clock += timedelta(seconds=gap)
            out.append(
                {
                    "event_id": f"S{self._count:08d}",
                    "customer_id": customer.customer_id,
                    "event_type": self._event_type(customer),
                    "timestamp": self._clock.isoformat(),
                    "channel": self._rng.choice(EVENT_CHANNELS),
                    "attributes": {},
                }
            )
            self._count += 1
        return out

    def launch(self, offer_id: str) -> None:
        """From now on `offer_id` is liked better than any other offer of its category."""
        self._launched.add(offer_id)

    def appeal(self, customer_id: str, offer_id: str) -> float:
        """How much this customer likes this offer against its category's average (hidden)."""
        if offer_id in self._launched:
            return LAUNCHED_APPEAL
        customer = self._by_id[customer_id]
        band = "student" if customer.age < 25 else "young" if customer.age < 40 else "older"
        key = (offer_id, customer.segment, band)
        appeal = self._appeal.get(key)
        if appeal is None:
            # seeded by the offer, so an offer has the same appeal in any run with this seed
            by_segment = random.Random(f"{self.seed}/{offer_id}/{customer.segment}")
            by_age = random.Random(f"{self.seed}/{offer_id}/{band}")
            a = by_segment.gauss(0.0, APPEAL_SPREAD) + by_age.gauss(0.0, APPEAL_SPREAD)
            appeal = self._appeal[key] = math.exp(min(max(a, APPEAL_RANGE[0]), APPEAL_RANGE[1]))
        return appeal

    def p_accept(
        self, customer_id: str, offer_id: str, category: str, phase: str, unanswered: int
    ) -> float:
        """The true probability that this customer accepts this offer now (hidden)."""
        customer = self._by_id[customer_id]
        base = BASE_ACCEPTANCE[customer.segment][category] * customer.taste[category]
        base *= self.appeal(customer_id, offer_id)
        return min(0.95, base * PHASE_FACTOR[phase] * FATIGUE**unanswered)


@dataclass(frozen=True)
class Truth:
    """The true P(accept) of a candidate and the expected value of showing it."""

    p_accept: float
    value: float  # p_accept × value now × lever


NOTHING = Truth(0.0, 0.0)


@dataclass
class Outcome:
    """What the channel did for one decision, and what others would have got."""

    interactions: list[dict[str, Any]]
    shown: bool
    accepted: bool
    learned: Truth  # the offer the ranker put first
    oracle: Truth  # the best choice by expected value, knowing the truth
    random: Truth  # the mean over the valid offers
    shown_offer: str | None = None
    oracle_offer: str | None = None


@dataclass(frozen=True)
class WindowFigures:
    """Means per shown decision over the last `decisions` shown decisions: the learned policy's
    (realised acceptance, and the expected acceptance and value of what it chose), the oracle's
    (the best choice knowing the truth) and a random valid offer's."""

    decisions: int
    acceptance: float
    expected_acceptance: float
    oracle_acceptance: float
    random_acceptance: float
    expected_value: float
    oracle_expected_value: float
    random_expected_value: float

    @property
    def value_vs_oracle(self) -> float:
        """The share of the best choice's expected value the learned policy got (0 if none)."""
        return (
            self.expected_value / self.oracle_expected_value if self.oracle_expected_value else 0.0
        )

    @property
    def value_vs_random(self) -> float:
        """How many times a random valid offer's expected value it got (0 if none)."""
        return (
            self.expected_value / self.random_expected_value if self.random_expected_value else 0.0
        )


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
    _recent: deque[tuple[float, ...]] = field(default_factory=deque)
    # a launched offer: over the `window` decisions after its launch, how often it was the best
    # choice, and how often of those the ranker put it first
    launched: str | None = None
    launched_at: int = 0  # decisions made before the launch
    launched_best: int = 0
    launched_first_when_best: int = 0

    def launch(self, offer_id: str) -> None:
        self.launched, self.launched_at = offer_id, self.decisions

    def add(self, outcome: Outcome) -> None:
        self.decisions += 1
        if (
            self.launched is not None
            and outcome.oracle_offer == self.launched
            and self.decisions - self.launched_at <= self.window
        ):
            self.launched_best += 1
            self.launched_first_when_best += outcome.shown_offer == self.launched
        if not outcome.shown:
            return
        self.shown += 1
        self.accepted += int(outcome.accepted)
        self.regret += outcome.oracle.value - outcome.learned.value
        self._recent.append(
            (
                float(outcome.accepted),
                outcome.learned.p_accept,
                outcome.oracle.p_accept,
                outcome.random.p_accept,
                outcome.learned.value,
                outcome.oracle.value,
                outcome.random.value,
            )
        )
        if len(self._recent) > self.window:
            self._recent.popleft()

    def recent(self) -> WindowFigures:
        """Acceptance and expected value per shown decision over the window, for the learned
        policy (realised and expected), the oracle and a random valid offer."""
        n = len(self._recent)
        means = [sum(row[i] for row in self._recent) / (n or 1) for i in range(7)]
        return WindowFigures(n, *means)

    def launch_figures(self) -> LaunchFigures | None:
        """How the launched offer was found, if one was launched."""
        if self.launched is None:
            return None
        share = self.launched_first_when_best / self.launched_best if self.launched_best else 0.0
        return LaunchFigures(self.launched, self.launched_at, self.launched_best, share)


class Channel:
    """Shows the first offer of each decision and answers as the simulated customer would."""

    def __init__(
        self,
        world: World,
        offers: dict[str, dict[str, Any]],
        seed: int = 11,
        irrelevant_value_ratio: float = 0.0,
    ) -> None:
        self._world = world
        self._offers = offers
        self._irrelevant_value_ratio = irrelevant_value_ratio  # the ranker's, for the same goal
        self._rng = random.Random(seed)
        self._count = 0

    def add_offer(self, offer: dict[str, Any]) -> None:
        """An offer loaded after the start (the μ-products learn of it from the offers topic)."""
        self._offers[offer["offer_id"]] = offer

    def _truth(self, customer_id: str, candidate: dict[str, Any]) -> Truth:
        offer = self._offers[candidate["offer_id"]]
        days = candidate.get("days_since_trigger")
        unanswered = candidate.get("unanswered_impressions", 0)
        profile = TimeValueProfile.of(offer, self._irrelevant_value_ratio)
        value, phase = value_now(profile, days, unanswered)
        p = self._world.p_accept(
            customer_id, candidate["offer_id"], offer["category"], phase, unanswered
        )
        return Truth(p, p * value * offer.get("business_lever", 1.0))

    def _showable(self, candidate: dict[str, Any]) -> bool:
        """What any policy may show: the contact policy applies to the oracle and baseline too."""
        limit = self._offers[candidate["offer_id"]].get("max_impressions")
        return limit is None or candidate.get("impressions", 0) < limit

    def respond(self, valid: dict[str, Any], decision: dict[str, Any]) -> Outcome:
        at = datetime.fromisoformat(decision["timestamp"])
        customer_id = decision["customer_id"]
        truths = {
            c["offer_id"]: self._truth(customer_id, c)
            for c in valid["candidates"]
            if self._showable(c)
        }
        # as the ranker: an offer worth nothing or less now is never shown
        truths = {oid: t for oid, t in truths.items() if t.value > 0}
        oracle_offer = max(truths, key=lambda offer_id: truths[offer_id].value, default=None)
        oracle = truths[oracle_offer] if oracle_offer is not None else NOTHING
        n = len(truths) or 1
        random_choice = Truth(
            sum(t.p_accept for t in truths.values()) / n, sum(t.value for t in truths.values()) / n
        )
        if not decision["offers"]:
            return Outcome([], False, False, NOTHING, oracle, random_choice, None, oracle_offer)
        shown = decision["offers"][0]["offer_id"]
        learned = truths.get(shown, NOTHING)
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
            interactions, True, accepted, learned, oracle, random_choice, shown, oracle_offer
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
