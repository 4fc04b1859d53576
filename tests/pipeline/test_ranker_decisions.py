"""Ranker decisions without Kafka: what may never be emitted, and what a decision says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline.contracts.schemas import CandidateOffer, Interaction, ValidOffers
from pipeline.next_best_offer.feedback import InputPosition
from pipeline.next_best_offer.state import CustomerDecisions, MemoryState
from tests.factories import (
    SHORT_INTEREST,
    candidate,
    catalogue_offer,
    decide,
    make_ranker_processor,
    valid_offers,
)

NOW = datetime(2026, 11, 10, 12, tzinfo=UTC)


def offer(offer_id: str, **fields: Any) -> dict[str, Any]:
    return catalogue_offer(offer_id, **{**SHORT_INTEREST, **fields})


def valid(*candidates: CandidateOffer, channel: str = "web") -> ValidOffers:
    return valid_offers(*candidates, at=NOW, channel=channel)


def test_value_orders_offers_and_negative_impact_or_contact_limit_is_never_emitted(
    tmp_path: Path,
) -> None:
    ranker = make_ranker_processor(
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
    decision = decide(
        ranker,
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
    assert decision["model_version"] == "bayesian_logistic-0" and decision["policy"] == "greedy"
    assert decision["explanation"].startswith("rich: P(accept)")


def test_channel_daily_limit_suppresses_the_whole_decision(tmp_path: Path) -> None:
    ranker = make_ranker_processor(tmp_path, [offer("a")], channel_daily_limit=2)
    state = CustomerDecisions(MemoryState())
    state.index["channel_shown"]["web"] = [(NOW - timedelta(hours=h)).timestamp() for h in (1, 2)]
    suppressed = decide(ranker, state, valid(candidate("a", 1)))
    assert suppressed["offers"] == [] and "channel daily limit" in suppressed["explanation"]
    other_channel = decide(ranker, state, valid(candidate("a", 1), channel="email"))
    assert [o["offer_id"] for o in other_channel["offers"]] == ["a"]


@pytest.mark.parametrize("exploration", ["epsilon-greedy", "thompson", "randomized-ucb"])
def test_exploring_policies_report_propensities(tmp_path: Path, exploration: str) -> None:
    ranker = make_ranker_processor(
        tmp_path, [offer(f"o{i}") for i in range(20)], exploration=exploration
    )
    record = valid(*(candidate(f"o{i}", 1) for i in range(20)))
    decision = decide(ranker, CustomerDecisions(MemoryState()), record)
    assert len(decision["offers"]) == 5
    assert all(0 < o["propensity"] <= 1 for o in decision["offers"][:1])
    assert sum(o["propensity"] for o in decision["offers"]) <= 1.0


def test_an_unanswered_impression_becomes_a_negative_label_once_its_window_has_passed(
    tmp_path: Path,
) -> None:
    ranker = make_ranker_processor(tmp_path, [offer("a", response_window_hours=48.0)])
    book = CustomerDecisions(MemoryState())
    first = decide(ranker, book, valid(candidate("a", 1)))
    impression = Interaction(
        interaction_id="i1",
        decision_id=first["decision_id"],
        customer_id="C1",
        offer_id="a",
        channel="web",
        outcome="impression",
        timestamp=NOW + timedelta(hours=1),
    )
    assert ranker.handle(book, impression, InputPosition("interactions", 0, 7), "C1") == []

    def later(hours: float, event_id: str) -> ValidOffers:
        at = NOW + timedelta(hours=hours)
        return valid(candidate("a", 1)).model_copy(update={"event_id": event_id, "timestamp": at})

    waiting = ranker.handle(book, later(48.5, "e2"), InputPosition("valid_offers", 0, 8), "C1")
    assert [type(r).__name__ for r in waiting] == ["Decision"]  # 47.5 h after the impression
    assert first["decision_id"] in book.pending
    expired = ranker.handle(book, later(49.5, "e3"), InputPosition("valid_offers", 0, 9), "C1")
    assert [(type(r).__name__, getattr(r, "label", None)) for r in expired] == [
        ("Feedback", False),
        ("Decision", None),
    ]
    assert ranker.resolver.stats.expired == 1 and first["decision_id"] not in book.pending
    decide(ranker, book, later(100, "e4"))
    assert set(book.pending) == {"d-e4"}  # never shown: forgotten once their window passed
    assert ranker.resolver.stats.expired == 1


def test_with_no_open_interest_the_likeliest_worth_most_goes_first_not_the_first_id(
    tmp_path: Path,
) -> None:
    """Outside every interest period an acceptance earns the offer's value as in it: how much
    less likely it is there is the model's to learn (the time value counted once)."""
    offers = [
        offer("a-cheap", value=50.0),
        offer("m-mid", value=120.0),
        offer("z-rich", value=300.0),
    ]
    ranker = make_ranker_processor(tmp_path, offers, objective="expected-value")
    cold = valid(candidate("a-cheap", None), candidate("m-mid", None), candidate("z-rich", None))
    decision = decide(ranker, CustomerDecisions(MemoryState()), cold)
    assert [o["offer_id"] for o in decision["offers"]] == ["z-rich", "m-mid", "a-cheap"]
    assert [o["value_now"] for o in decision["offers"]] == [300.0, 120.0, 50.0]
    assert {o["phase"] for o in decision["offers"]} == {"irrelevant"}


def test_time_weighted_ranking_weighs_cold_offers_by_the_irrelevant_ratio(tmp_path: Path) -> None:
    """As nbo ranked before: cold offers worth `irrelevant_value_ratio` of their value (0.1)."""
    offers = [offer("a-cheap", value=50.0), offer("z-rich", value=300.0)]
    ranker = make_ranker_processor(tmp_path, offers, objective="time-weighted")
    cold = valid(candidate("a-cheap", None), candidate("z-rich", None))
    decision = decide(ranker, CustomerDecisions(MemoryState()), cold)
    assert [o["value_now"] for o in decision["offers"]] == [30.0, 5.0]
    # an offer in an interest period outranks a richer cold one at equal P(accept)
    warm = valid(candidate("a-cheap", 1), candidate("z-rich", None))
    decision = decide(ranker, CustomerDecisions(MemoryState()), warm)
    assert [o["offer_id"] for o in decision["offers"]] == ["a-cheap", "z-rich"]


def test_a_decision_names_the_offer_worth_most_by_expected_value_even_if_not_emitted(
    tmp_path: Path,
) -> None:
    """What the time weighting changed stays visible: at equal P(accept) the rich cold offer
    earns most, though its tenth of the value leaves it out of a one-offer decision."""
    offers = [offer("a-cheap", value=50.0), offer("z-rich", value=300.0)]
    warm = valid(candidate("a-cheap", 1), candidate("z-rich", None))
    named = {}
    for objective in ("time-weighted", "expected-value"):
        ranker = make_ranker_processor(tmp_path / objective, offers, objective=objective, top_k=1)
        decision = decide(ranker, CustomerDecisions(MemoryState()), warm)
        named[objective] = (decision["offers"][0]["offer_id"], decision["best_by_expected_value"])
    assert named == {"time-weighted": ("a-cheap", "z-rich"), "expected-value": ("z-rich", "z-rich")}
    ranker = make_ranker_processor(tmp_path / "none", offers, irrelevant_value_ratio=0.0)
    empty = decide(ranker, CustomerDecisions(MemoryState()), valid(candidate("z-rich", None)))
    assert empty["offers"] == [] and empty["best_by_expected_value"] is None


def test_cold_offers_are_not_shown_when_they_are_worth_nothing(tmp_path: Path) -> None:
    ranker = make_ranker_processor(
        tmp_path, [offer("a"), offer("b")], objective="time-weighted", irrelevant_value_ratio=0.0
    )
    decision = decide(
        ranker, CustomerDecisions(MemoryState()), valid(candidate("a", None), candidate("b", 30))
    )
    assert decision["offers"] == [] and decision["explanation"] == "no offer worth showing"
