"""Ranker decisions without Kafka: what may never be emitted, and what a decision says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from quixstreams.context import set_message_context
from quixstreams.models import MessageContext

from pipeline.next_best_offer import Ranker
from pipeline.ranker_state import CustomerDecisions, MemoryState
from pipeline.schemas import Interaction, ValidOffers
from pipeline.settings import Settings

NOW = datetime(2026, 11, 10, 12, tzinfo=UTC)


def offer(offer_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "offer_id": offer_id,
        "category": "card",
        "value": 100.0,
        "business_lever": 1.0,
        "primary_interest_days": 2.0,
        "secondary_interest_days": 5.0,
        "negative_impact_days": 10.0,
        "secondary_value_ratio": 0.5,
        "negative_value_ratio": -0.5,
        "max_impressions": 3,
        "response_window_hours": 48.0,
        "triggers": ["travel_booking"],
        **extra,
    }


class Letters:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, record: dict[str, Any]) -> None:
        self.sent.append(record)


def make_ranker(tmp_path: Path, offers: list[dict[str, Any]], **settings: Any) -> Ranker:
    tables = SimpleNamespace(catalogue=SimpleNamespace(offers={o["offer_id"]: o for o in offers}))
    config = Settings(**{"state_dir": tmp_path, "exploration": "greedy", "top_k": 5, **settings})
    return Ranker(config, tables, Letters(), tmp_path / "model.pkl")  # type: ignore[arg-type]


def valid(*candidates: dict[str, Any], channel: str = "web") -> ValidOffers:
    return ValidOffers.model_validate(
        {
            "event_id": "e1",
            "event_type": "travel_booking",
            "customer_id": "C1",
            "timestamp": NOW.isoformat(),
            "channel": channel,
            "customer": {"segment": "mass", "age": 30, "products_held": []},
            "candidates": list(candidates),
            "excluded": [],
            "rule_versions": {"adult": 1},
            "catalogue_version": 3,
        }
    )


def candidate(
    offer_id: str, days_ago: float | None, impressions: int = 0, unanswered: int = 0
) -> dict[str, Any]:
    return {
        "offer_id": offer_id,
        "days_since_trigger": days_ago,
        "impressions": impressions,
        "unanswered_impressions": unanswered,
    }


def test_value_orders_offers_and_negative_impact_or_contact_limit_is_never_emitted(
    tmp_path: Path,
) -> None:
    ranker = make_ranker(
        tmp_path,
        [
            offer("fresh"),
            offer("older"),
            offer("stale"),
            offer("tired", max_impressions=10),
            offer("capped"),
            offer("rich", value=300.0),
        ],
    )
    decision = ranker.decide(
        CustomerDecisions(MemoryState()),
        valid(
            candidate("fresh", 1),
            candidate("older", 3),
            candidate("stale", 12),
            candidate("tired", 1, impressions=4, unanswered=4),
            candidate("capped", 1, impressions=3),
            candidate("rich", 1),
        ),
    )
    emitted = [o["offer_id"] for o in decision["offers"]]
    assert emitted[:3] == ["rich", "fresh", "older"]  # equal P(accept): value decides
    assert "stale" not in emitted  # past the point of negative impact
    assert "tired" not in emitted  # four unanswered impressions: fatigue pushed it past it
    assert "capped" not in emitted  # at its impression limit
    phases = {o["offer_id"]: o["phase"] for o in decision["offers"]}
    assert phases == {"rich": "primary", "fresh": "primary", "older": "secondary"}
    assert decision["decision_id"] == "d-e1" and decision["rule_versions"] == {"adult": 1}
    assert sum(o["propensity"] for o in decision["offers"]) <= 1.0
    assert decision["model_version"] == "logistic-0" and decision["policy"] == "greedy"
    assert decision["explanation"].startswith("rich: P(accept)")


def test_channel_daily_limit_suppresses_the_whole_decision(tmp_path: Path) -> None:
    ranker = make_ranker(tmp_path, [offer("a")], channel_daily_limit=2)
    state = CustomerDecisions(MemoryState())
    state.index["channel_shown"]["web"] = [(NOW - timedelta(hours=h)).timestamp() for h in (1, 2)]
    suppressed = ranker.decide(state, valid(candidate("a", 1)))
    assert suppressed["offers"] == [] and "channel daily limit" in suppressed["explanation"]
    other_channel = ranker.decide(state, valid(candidate("a", 1), channel="email"))
    assert [o["offer_id"] for o in other_channel["offers"]] == ["a"]


@pytest.mark.parametrize("exploration", ["epsilon-greedy", "thompson"])
def test_exploring_policies_report_propensities(tmp_path: Path, exploration: str) -> None:
    ranker = make_ranker(tmp_path, [offer(f"o{i}") for i in range(20)], exploration=exploration)
    record = valid(*(candidate(f"o{i}", 1) for i in range(20)))
    decision = ranker.decide(CustomerDecisions(MemoryState()), record)
    assert len(decision["offers"]) == 5
    assert all(0 < o["propensity"] <= 1 for o in decision["offers"][:1])
    assert sum(o["propensity"] for o in decision["offers"]) <= 1.0


def test_an_unanswered_impression_becomes_a_negative_label_once_its_window_has_passed(
    tmp_path: Path,
) -> None:
    ranker = make_ranker(tmp_path, [offer("a", response_window_hours=48.0)])
    book = CustomerDecisions(MemoryState())
    first = ranker.decide(book, valid(candidate("a", 1)))
    set_message_context(MessageContext("interactions", 0, 7, 0))
    impression = Interaction(
        interaction_id="i1",
        decision_id=first["decision_id"],
        customer_id="C1",
        offer_id="a",
        channel="web",
        outcome="impression",
        timestamp=NOW + timedelta(hours=1),
    )
    ranker.observe(book, impression, "C1")

    def later(hours: float, event_id: str) -> ValidOffers:
        at = NOW + timedelta(hours=hours)
        return valid(candidate("a", 1)).model_copy(update={"event_id": event_id, "timestamp": at})

    ranker.decide(book, later(48.5, "e2"))  # 47.5 h after the impression: still waiting
    assert ranker.model.n_learned == 0 and first["decision_id"] in book.pending
    ranker.decide(book, later(49.5, "e3"))
    assert ranker.model.n_learned == 1 and ranker.stats.expired == 1
    assert first["decision_id"] not in book.pending
    assert ranker.metrics.labels == 1 and ranker.metrics.accepted == 0
    ranker.decide(book, later(100, "e4"))
    assert set(book.pending) == {"d-e4"}  # never shown: forgotten once their window passed
    assert ranker.model.n_learned == 1
