"""A decision already emitted is repeated as it was when its event is decided again (after a
crash, under at-least-once), so that every answer to it finds its offer in the ranker's state."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline.contracts.schemas import Decision, Interaction
from pipeline.next_best_offer.emitted import EmittedDecisions
from pipeline.next_best_offer.feedback import InputPosition
from pipeline.next_best_offer.state import CustomerDecisions, MemoryState
from pipeline.settings import Settings
from tests.factories import (
    SHORT_INTEREST,
    candidate,
    catalogue_offer,
    make_ranker_processor,
    valid_offers,
)
from tests.streams import send

NOW = datetime(2026, 11, 10, 12, tzinfo=UTC)
OFFERS = [catalogue_offer(o, **SHORT_INTEREST) for o in ("a", "b", "c")]
RECORD = valid_offers(candidate("a", 1), candidate("b", 1), candidate("c", 1), at=NOW)


class Emitted:
    """Stands in for `EmittedDecisions`: what was emitted before this ranker started."""

    def __init__(self, *decisions: Decision) -> None:
        self._decisions = {d.decision_id: d for d in decisions}

    def pop(self, partition: int, decision_id: str) -> Decision | None:
        return self._decisions.pop(decision_id, None)


def first_decision(tmp_path: Path) -> Decision:
    ranker = make_ranker_processor(tmp_path / "first", OFFERS, top_k=2)
    book = CustomerDecisions(MemoryState())
    (decision,) = ranker.handle(book, RECORD, InputPosition("valid_offers", 0, 1), "C1")
    assert isinstance(decision, Decision)
    return decision


def answer(offer_id: str, decision_id: str, outcome: str) -> Interaction:
    return Interaction(
        interaction_id=f"i-{offer_id}-{outcome}",
        decision_id=decision_id,
        customer_id="C1",
        offer_id=offer_id,
        channel="web",
        outcome=outcome,
        timestamp=NOW + timedelta(hours=1),
    )


def test_a_decision_made_again_keeps_the_emitted_offers_and_is_not_told_twice(
    tmp_path: Path,
) -> None:
    earlier = first_decision(tmp_path)
    # the emitted decision put "c" first, which this ranker (greedy, same values) would not
    shown = [earlier.offers[0].model_copy(update={"offer_id": "c"}), earlier.offers[1]]
    earlier = earlier.model_copy(update={"offers": shown})
    restarted = make_ranker_processor(tmp_path / "again", OFFERS, Emitted(earlier), top_k=2)
    book = CustomerDecisions(MemoryState())
    emitted = restarted.handle(book, RECORD, InputPosition("valid_offers", 0, 1), "C1")
    assert emitted == []  # the decision is out already
    assert set(book.pending[earlier.decision_id]["shown"]) == {"c", earlier.offers[1].offer_id}
    details = book.details(earlier.decision_id)
    assert details.first == "c" and details.offers["c"].propensity == shown[0].propensity
    assert details.offers["c"].features  # computed again
    at = InputPosition("interactions", 0, 2)
    for outcome in ("impression", "accept"):
        result = restarted.handle(book, answer("c", earlier.decision_id, outcome), at, "C1")
    (label,) = result
    assert (label.offer_id, label.outcome, label.propensity) == ("c", "accept", shown[0].propensity)


def test_an_event_not_emitted_before_is_decided_as_usual(tmp_path: Path) -> None:
    ranker = make_ranker_processor(tmp_path, OFFERS, Emitted(), top_k=2)
    book = CustomerDecisions(MemoryState())
    (decision,) = ranker.handle(book, RECORD, InputPosition("valid_offers", 0, 1), "C1")
    assert isinstance(decision, Decision) and decision.decision_id == "d-e1"


def test_an_emitted_decision_whose_offer_is_gone_is_decided_anew(tmp_path: Path) -> None:
    earlier = first_decision(tmp_path)
    gone = earlier.offers[0].model_copy(update={"offer_id": "withdrawn"})
    earlier = earlier.model_copy(update={"offers": [gone]})
    ranker = make_ranker_processor(tmp_path / "again", OFFERS, Emitted(earlier), top_k=2)
    book = CustomerDecisions(MemoryState())
    (decision,) = ranker.handle(book, RECORD, InputPosition("valid_offers", 0, 1), "C1")
    assert isinstance(decision, Decision)
    assert "withdrawn" not in book.pending[decision.decision_id]["shown"]


def decision_record(decision_id: str, customer_id: str) -> dict[str, Any]:
    return {
        "decision_id": decision_id, "customer_id": customer_id, "event_id": decision_id[2:],
        "event_type": "travel_booking", "timestamp": NOW.isoformat(), "channel": "web",
        "offers": [], "model_version": "m-1", "policy": "greedy", "feature_set": "default/6",
        "rule_versions": {}, "explanation": "",
    }  # fmt: skip


def test_the_tail_of_a_partition_is_read_back_once_each_decision_given_once_then_let_go(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(topic_partitions=1)
    from pipeline.contracts.topics import create_topics

    create_topics(settings, settings.broker_address or "")
    records = [("C1", decision_record(f"d-e{n}", "C1")) for n in range(10)]
    send(settings, "next_best_offers", [*records, ("C1", b"not a decision")])
    emitted = EmittedDecisions(settings, settings.broker_address or "", tail=5)
    assert emitted.pop(0, "d-e2") is None  # beyond the tail it reads
    found = emitted.pop(0, "d-e9")
    assert found is not None and found.customer_id == "C1"
    assert emitted.pop(0, "d-e9") is None  # given once
    send(settings, "next_best_offers", [("C1", decision_record("d-late", "C1"))])
    assert emitted.pop(0, "d-late") is None  # emitted after it was read: by this process
    assert emitted.pop(0, "d-e8") is not None  # the fifth input asked about, as many as the
    assert emitted.pop(0, "d-e7") is None  # tail holds: from here on the tail is let go
