"""A second simulated bank, built unlike nbo's default features: `nbo demo --world households`.

Forty offers in six categories. What a customer makes of an offer depends on their income band,
their region, the products they hold and their household (an attribute: single, couple or
family), with a twist per offer: each offer has its own weights for each of them, and its own
way of losing interest with time (some keep most of it in their secondary period, some lose
almost all). Segments are only a coarse reading of income, and nothing depends on age bands, so
the default features' segment and age crosses see little of it.

`STRUCTURE` is the feature set the hidden P(accept) is written in: a model with it can learn the
world exactly, as far as its labels allow (the ceiling `benchmarks.learnability` compares a
feature set with).

The best choice is defined by the channel (`pipeline.simulation.channel`): the expected value
of the moment, P(accept) × value × lever.

>>> world = HouseholdsWorld(customers=40, seed=3)
>>> len(world.offers()), len({offer["category"] for offer in world.offers()})
(40, 6)
>>> record = world.customer_records()[0]
>>> sorted(record["attributes"])
['household']
>>> world.events(2)[1]["event_id"]
'H00000001'
>>> someone = world.customers[0].customer_id
>>> world.launch(world.new_offer()["offer_id"])
>>> best = max(world.appeal(someone, o["offer_id"]) for o in world.offers()
...            if o["category"] == world.new_offer()["category"])
>>> world.appeal(someone, world.new_offer()["offer_id"]) > best
True
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from features import Exposure, Moment, feature_set
from features.feature_set import Features
from pipeline.simulation.world import EVENT_CHANNELS, NEW_OFFER, START, TRIGGERS

SECONDS_PER_EVENT = 30.0
CATEGORY_SIZES = {"card": 8, "loan": 7, "mortgage": 5, "savings": 7, "investment": 6,
                  "insurance": 7}  # fmt: skip
VALUE_RANGE = {"card": (80, 220), "loan": (250, 700), "mortgage": (1500, 3200),
               "savings": (40, 140), "investment": (300, 900), "insurance": (90, 260)}  # fmt: skip
BASE_ACCEPTANCE = 0.06  # P(accept) of an average offer in its primary period, before appeal
INCOME_BANDS = ("low", "middle", "high")
REGIONS = ("capital", "north", "south", "east", "west")
HOUSEHOLDS = ("single", "couple", "family")
HELD = ("card", "loan", "mortgage", "savings", "investment", "insurance")
FATIGUE = 0.7
WEIGHT_SPREAD = 0.6  # each offer's weight per income band, region, household and holding
LAUNCHED_BOOST = 1.8  # a launched offer's appeal over the best of its category
CATALOGUE_SEED = 2026  # the offers are the same in every run


@dataclass(frozen=True)
class Household:
    customer_id: str
    age: int
    income: float
    income_band: str
    region: str
    household: str
    products_held: tuple[str, ...]


def _income_band(income: float) -> str:
    return "low" if income < 30_000 else "middle" if income < 75_000 else "high"


def _segment(income: float) -> str:
    return "mass" if income < 75_000 else "affluent" if income < 150_000 else "private"


class HouseholdsWorld:
    """The simulated population and catalogue. Seeded: the same seed, the same customers and
    events; the catalogue and each offer's weights are the same for every seed."""

    def __init__(self, customers: int = 2000, seed: int = 7) -> None:
        self.seed = seed
        self._rng = random.Random(seed)
        self._offers = _catalogue()
        self._by_offer = {offer["offer_id"]: offer for offer in self._offers}
        self._weights = {offer["offer_id"]: _weights(offer["offer_id"]) for offer in self._offers}
        self.customers = [self._customer(index) for index in range(customers)]
        self._by_id = {c.customer_id: c for c in self.customers}
        self._clock = START
        self._count = 0
        self._launched: set[str] = set()
        self._category_taste = {c.customer_id: self._tastes(c) for c in self.customers}

    def _customer(self, index: int) -> Household:
        rng = self._rng
        income = float(math.exp(rng.gauss(math.log(45_000), 0.6)))
        held = tuple(product for product in HELD if rng.random() < 0.25)
        return Household(f"H{index:05d}", rng.randint(20, 75), income, _income_band(income),
                         rng.choice(REGIONS), rng.choice(HOUSEHOLDS), held)  # fmt: skip

    def offers(self) -> list[dict[str, Any]]:
        """The catalogue (DWH offers)."""
        return [dict(offer) for offer in self._offers]

    def new_offer(self) -> dict[str, Any]:
        """The offer launched mid-run: liked better than every other offer of its category."""
        launched = dict(self._offers[0])
        launched.update(offer_id="card-09", name="Household Rewards Card")
        return launched

    def customer_records(self) -> list[dict[str, Any]]:
        """CRM profiles for the `customers` topic (the weights stay hidden)."""
        return [
            {
                "customer_id": c.customer_id,
                "age": c.age,
                "segment": _segment(c.income),
                "region": c.region,
                "income": round(c.income, 2),
                "tenure_years": round(
                    random.Random(f"{self.seed}/{c.customer_id}").uniform(0.5, 25), 1
                ),
                "products_held": list(c.products_held),
                "consents": ["mobile_app", "web", "email", "branch"],
                "updated_at": (START - timedelta(days=30)).isoformat(),
                "attributes": {"household": c.household},
            }
            for c in self.customers
        ]

    def _tenure(self, customer_id: str) -> float:
        return random.Random(f"{self.seed}/{customer_id}").uniform(0.5, 25)

    def launch(self, offer_id: str) -> None:
        """From now on `offer_id` is liked better than any other offer of its category."""
        self._launched.add(offer_id)

    def appeal(self, customer_id: str, offer_id: str) -> float:
        """How much this customer likes this offer (hidden): e^(the offer's weights for the
        customer's income band, region, household and each product they hold)."""
        customer = self._by_id[customer_id]
        if offer_id in self._launched:
            category = self._by_offer.get(offer_id, self.new_offer())["category"]
            return LAUNCHED_BOOST * max(
                self.appeal(customer_id, other["offer_id"])
                for other in self._offers
                if other["category"] == category
            )
        weights = self._weights[offer_id]
        score = (
            weights[f"income={customer.income_band}"]
            + weights[f"region={customer.region}"]
            + weights[f"household={customer.household}"]
            + sum(weights[f"holds={product}"] for product in customer.products_held)
        )
        return math.exp(score)

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
        moves as the catalogue documents (`phase`)."""
        weights = self._weights.get(offer_id) or self._weights[self._offers[0]["offer_id"]]
        base = BASE_ACCEPTANCE * self.appeal(customer_id, offer_id)
        return min(0.9, base * weights[f"phase={phase}"] * FATIGUE**unanswered)

    def _tastes(self, customer: Household) -> dict[str, float]:
        """How often each category's triggers come from this customer: their best offer's appeal."""
        best: dict[str, float] = {}
        for offer in self._offers:
            appeal = self.appeal(customer.customer_id, offer["offer_id"])
            best[offer["category"]] = max(best.get(offer["category"], 0.0), appeal)
        return best

    def events(self, count: int, gap: float = SECONDS_PER_EVENT) -> list[dict[str, Any]]:
        """The next `count` journey events of the population, `gap` seconds apart in time."""
        out = []
        for _ in range(count):
            customer = self._rng.choice(self.customers)
            self._clock += timedelta(seconds=gap)
            if self._rng.random() < 0.35:
                event_type = self._rng.choice(("app_login", "page_view", "branch_visit"))
            else:
                tastes = self._category_taste[customer.customer_id]
                category = self._rng.choices(list(tastes), weights=list(tastes.values()))[0]
                event_type = self._rng.choice(TRIGGERS[category])
            out.append(
                {
                    "event_id": f"H{self._count:08d}",
                    "customer_id": customer.customer_id,
                    "event_type": event_type,
                    "timestamp": self._clock.isoformat(),
                    "channel": self._rng.choice(EVENT_CHANNELS),
                    "attributes": {},
                }
            )
            self._count += 1
        return out


def _catalogue() -> list[dict[str, Any]]:
    rng = random.Random(CATALOGUE_SEED)
    offers = []
    for category, size in CATEGORY_SIZES.items():
        low, high = VALUE_RANGE[category]
        for number in range(1, size + 1):
            primary = rng.choice((2.0, 3.0, 5.0, 7.0, 14.0))
            offers.append(
                {
                    **NEW_OFFER,  # the bank world's terms: channels, validity, limits
                    "offer_id": f"{category}-{number:02d}",
                    "name": f"{category.title()} {number}",
                    "category": category,
                    "value": round(rng.uniform(low, high), 2),
                    "business_lever": rng.choice((1.0, 1.0, 1.0, 0.8, 1.2)),
                    "triggers": list(TRIGGERS[category]),
                    "primary_interest_days": primary,
                    "secondary_interest_days": primary * 3,
                    "negative_impact_days": primary * 10,
                }
            )
    return offers


def _weights(offer_id: str) -> dict[str, float]:
    """One offer's hidden weights (the same in every run): for each income band, region,
    household and product held, and how its appeal falls with the interest phase."""
    rng = random.Random(f"{CATALOGUE_SEED}/{offer_id}")
    kinds = {"income": INCOME_BANDS, "region": REGIONS, "household": HOUSEHOLDS, "holds": HELD}
    weights = {
        f"{name}={value}": rng.gauss(0.0, WEIGHT_SPREAD)
        for name, values in kinds.items()
        for value in values
    }
    secondary = rng.uniform(0.2, 0.9)  # the twist: how much interest the secondary period keeps
    weights.update({"phase=primary": 1.0, "phase=secondary": secondary,
                    "phase=irrelevant": secondary * rng.uniform(0.1, 0.4),
                    "phase=negative": 0.02})  # fmt: skip
    return weights


@feature_set("households-structure", 1)
def STRUCTURE(
    customer: Mapping[str, Any], offer: Mapping[str, Any], _moment: Moment, exposure: Exposure
) -> Features:
    """What this world's P(accept) depends on, crossed with the offer as `_weights` are: the
    customer's income band, region, household and each product held, the interest phase, and
    the unanswered impressions (fatigue, the same for every offer).

    >>> customer = {"income": 52000.0, "region": "north", "products_held": ["loan"],
    ...             "attributes": {"household": "couple"}}
    >>> x = STRUCTURE.features(customer, {"offer_id": "card-01"}, None,
    ...                        Exposure(1.0, "primary", 1, 1))
    >>> sorted(name for name in x if "×" in name)  # doctest: +NORMALIZE_WHITESPACE
    ['holds=loan×offer=card-01', 'household=couple×offer=card-01',
     'income=middle×offer=card-01', 'phase=primary×offer=card-01', 'region=north×offer=card-01']
    """
    identity = f"offer={offer['offer_id']}"
    fields = (
        f"income={_income_band(float(customer.get('income') or 0.0))}",
        f"region={customer.get('region')}",
        f"household={(customer.get('attributes') or {}).get('household')}",
        f"phase={exposure.phase}",
        *(f"holds={product}" for product in customer.get("products_held") or ()),
    )
    return {
        "bias": 1.0,
        identity: 1.0,
        **{f"{field}×{identity}": 1.0 for field in fields},
        "unanswered": float(exposure.unanswered),
    }
