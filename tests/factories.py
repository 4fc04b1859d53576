"""The records and helpers tests build on, in one place.

Each factory returns a valid record with the fields a test does not care about filled in;
keyword arguments override any field. Records for a topic are JSON-ready dicts, as a producer
would send them; `catalogue_offer` is an offer as the offers table holds it once validated.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

from models.ranker import OnlineRanker
from pipeline.contracts.schemas import CandidateOffer, Offer, ValidOffers
from pipeline.contracts.topics import create_topics
from pipeline.next_best_offer.emitted import EarlierDecisions
from pipeline.next_best_offer.feedback import InputPosition
from pipeline.next_best_offer.processor import Ranker
from pipeline.next_best_offer.state import CustomerDecisions
from pipeline.settings import Settings
from tests.streams import send

T = TypeVar("T")

START = datetime(2026, 11, 2, 9, tzinfo=UTC)  # event time of the stream tests' first events


def offer(offer_id: str, category: str = "card", **fields: Any) -> dict[str, Any]:
    """An `offers` record from the DWH batch: interest for 5 + 5 days after a travel booking."""
    return {
        "offer_id": offer_id,
        "name": offer_id,
        "category": category,
        "value": 100.0,
        "triggers": ["travel_booking"],
        "primary_interest_days": 5,
        "secondary_interest_days": 5,
        "negative_impact_days": 30,
        "channels": ["web"],
        "valid_from": "2026-01-01",
        "valid_to": "2027-01-01",
        "max_impressions": 50,
        **fields,
    }


# An offer that interests briefly: 2 + 5 days, hurting from day 10, 3 impressions at most, and a
# 48-hour response window (the ranker's unit tests move through all of it within days).
SHORT_INTEREST: dict[str, Any] = {
    "primary_interest_days": 2.0,
    "secondary_interest_days": 5.0,
    "negative_impact_days": 10.0,
    "max_impressions": 3,
    "response_window_hours": 48.0,
}


def catalogue_offer(offer_id: str, category: str = "card", **fields: Any) -> dict[str, Any]:
    """`offer(...)` as the offers table holds it: validated, every field present."""
    return Offer.model_validate(offer(offer_id, category, **fields)).model_dump()


def customer(customer_id: str, segment: str = "mass", **fields: Any) -> dict[str, Any]:
    """A `customers` record from the CRM."""
    return {
        "customer_id": customer_id,
        "age": 40,
        "segment": segment,
        "region": "north",
        "income": 60000.0,
        "tenure_years": 3.0,
        "consents": ["web"],
        "updated_at": "2026-01-01",
        **fields,
    }


def event(event_id: str, customer_id: str, at: datetime, **fields: Any) -> dict[str, Any]:
    """An `events` record: a travel booking on the web."""
    return {
        "event_id": event_id,
        "customer_id": customer_id,
        "event_type": "travel_booking",
        "timestamp": at.isoformat(),
        "channel": "web",
        **fields,
    }


def interaction(
    decision_id: str, customer_id: str, offer_id: str, outcome: str, at: datetime
) -> tuple[str, dict[str, Any]]:
    """An `interactions` record, keyed as sent: the customer's reaction to one shown offer."""
    return customer_id, {
        "interaction_id": f"{decision_id}-{offer_id}-{outcome}",
        "decision_id": decision_id,
        "customer_id": customer_id,
        "offer_id": offer_id,
        "channel": "web",
        "outcome": outcome,
        "timestamp": at.isoformat(),
    }


def candidate(
    offer_id: str, days_ago: float | None, impressions: int = 0, unanswered: int = 0
) -> CandidateOffer:
    """One valid offer of a `valid_offers` record, triggered `days_ago` days before."""
    return CandidateOffer(
        offer_id=offer_id,
        days_since_trigger=days_ago,
        impressions=impressions,
        unanswered_impressions=unanswered,
    )


def valid_offers(
    *candidates: CandidateOffer,
    at: datetime = START,
    channel: str = "web",
    event_id: str = "e1",
    customer_id: str = "C1",
) -> ValidOffers:
    """A `valid_offers` record as Valid Offers emits it, for a mass-market customer of 30."""
    return ValidOffers(
        event_id=event_id,
        event_type="travel_booking",
        customer_id=customer_id,
        timestamp=at,
        channel=channel,
        customer={"segment": "mass", "age": 30, "products_held": []},
        candidates=list(candidates),
        excluded=[],
        rule_versions={"adult": 1},
        catalogue_version=3,
    )


def make_ranker_processor(
    tmp_path: Path,
    offers: list[dict[str, Any]],
    emitted: EarlierDecisions | None = None,
    **settings: Any,
) -> Ranker:
    """A ranker over `offers` (catalogue offers), greedy and top 5 unless `settings` say else,
    with its model files under `tmp_path` and no broker; `emitted` are the decisions it finds
    already emitted when it starts (after a crash)."""
    tables = SimpleNamespace(catalogue=SimpleNamespace(offers={o["offer_id"]: o for o in offers}))
    config = Settings(**{"state_dir": tmp_path, "exploration": "greedy", "top_k": 5, **settings})
    return Ranker(config, tables, DeadLetters(), emitted=emitted)  # type: ignore[arg-type]


_VALID_OFFERS_OFFSETS = itertools.count()


def decide(ranker: Ranker, book: CustomerDecisions, record: ValidOffers) -> dict[str, Any]:
    """`ranker`'s decision on `record`, as it goes on the topic."""
    at = InputPosition("valid_offers", 0, next(_VALID_OFFERS_OFFSETS))  # each record its own
    *_feedback, decision = ranker.handle(book, record, at, record.customer_id)
    return decision.model_dump(mode="json")


# The stream tests' four offers, one per category
OFFERS = {"offer-a": "card", "offer-b": "loan", "offer-c": "savings", "offer-d": "insurance"}


def register(settings: Settings, ranker: OnlineRanker) -> str:
    """Register `ranker` as a new version of the settings' MLflow registry; its version."""
    import mlflow

    from pipeline.review import registry

    registry.configure(settings.mlflow_tracking_uri, settings.mlflow_artifacts_dir)
    with mlflow.start_run(run_name="test"):
        version = registry.log_ranker(ranker)
    assert version is not None
    return version


def with_offers(settings: Settings) -> Settings:
    """`settings` once its topics exist and hold the four test offers."""
    create_topics(settings, settings.broker_address or "")
    send(settings, "offers", [(oid, offer(oid, category)) for oid, category in OFFERS.items()])
    return settings


class DeadLetters:
    """Stands in for the dead-letter producer: keeps what was sent."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, record: dict[str, Any]) -> None:
        self.sent.append(record)


def eventually(probe: Callable[[], T], *, within: float, what: str, pause: float = 0.05) -> T:
    """Call `probe` until it returns something truthy, and return that; fail after `within`
    seconds, saying what was awaited and what the probe last returned."""
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {within:g} s: {what} (last: {value!r})")
        time.sleep(pause)
