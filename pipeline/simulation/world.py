"""A simulated bank's customers and channels, for the closed-loop demo and its tests.

The `World` is a seeded population with *hidden* preferences: a base acceptance probability per
segment and offer category, a personal taste per customer and category, each offer's own appeal
within its category (by segment and age band: two cards are not alike, and not alike to
everyone), and how interest moves with time since a trigger and with unanswered impressions.
Journey events come from it (trigger events that open interest in related categories, and
background noise). `World.launch` brings a new offer that customers like better than every
other of its category (`NEW_OFFER`, which the demo loads mid-run).

The `Channel` (`pipeline.simulation.channel`) shows the decisions to these customers.

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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

START = datetime(2026, 11, 1, tzinfo=UTC)
SAMPLE_OFFERS = Path(__file__).resolve().parents[2] / "data" / "sample" / "offers.csv"
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

    def offers(self) -> list[dict[str, Any]]:
        """The catalogue: the sample bank's offers (`data/sample/offers.csv`)."""
        from pipeline.connectors.files import parse_file
        from pipeline.contracts.schemas import Offer

        parsed = parse_file(SAMPLE_OFFERS, Offer)
        return [offer.model_dump() for _, offer in parsed.records]

    def new_offer(self) -> dict[str, Any]:
        """The offer launched mid-run (`NEW_OFFER`)."""
        return dict(NEW_OFFER)

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
        self,
        customer_id: str,
        offer_id: str,
        category: str,
        phase: str,
        unanswered: int,
        days_since_trigger: float | None = None,
    ) -> float:
        """The true probability that this customer accepts this offer now (hidden): interest
        moves as the catalogue documents (`phase`; the days since the trigger, moved on by
        fatigue, are not needed here)."""
        base = self.primary_acceptance(customer_id, offer_id, category)
        return min(0.95, base * PHASE_FACTOR[phase] * FATIGUE**unanswered)

    def primary_acceptance(self, customer_id: str, offer_id: str, category: str) -> float:
        """This customer's P(accept) of this offer in its primary period, never shown before,
        before the cap (hidden)."""
        customer = self._by_id[customer_id]
        base = BASE_ACCEPTANCE[customer.segment][category] * customer.taste[category]
        return base * self.appeal(customer_id, offer_id)
