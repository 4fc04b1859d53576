"""A customer's pending decisions in the ranker: bounded, and cheap to read on every record."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.next_best_offer.state import (
    INDEX_KEY,
    LAYOUT,
    PENDING_PER_CUSTOMER,
    CustomerDecisions,
    DecisionDetails,
    MemoryState,
    PendingOffer,
)


class CountingState(MemoryState):
    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    def get(self, key: str, default: Any = None) -> Any:
        self.reads.append(key)
        return super().get(key, default)


def offers(*ids: str) -> DecisionDetails:
    pending = {i: PendingOffer(features={"bias": 1.0}, p_accept=0.1, value_now=10.0) for i in ids}
    return DecisionDetails(offers=pending, first=ids[0])


def test_the_oldest_pending_decision_is_forgotten_with_its_details() -> None:
    state = MemoryState()
    book = CustomerDecisions(state)
    for n in range(PENDING_PER_CUSTOMER + 3):
        book.add(f"d-{n}", at=float(n), due=float(n) + 60, details=offers("a"))
    book.save()
    assert len(book.pending) == PENDING_PER_CUSTOMER
    assert "d-0" not in book.pending and "d-2" not in book.pending and "d-3" in book.pending
    details = [key for key in state if key != INDEX_KEY]
    assert len(details) == PENDING_PER_CUSTOMER and "decision:d-0" not in details


def test_a_decision_is_dropped_with_its_details_once_each_offer_is_resolved() -> None:
    state = MemoryState()
    book = CustomerDecisions(state)
    book.add("d-1", at=0.0, due=60.0, details=offers("a", "b"))
    book.shown("d-1", "a", at=5.0, channel="web")
    book.resolve("d-1", "a")
    assert book.pending["d-1"]["shown"] == {"b": None} and "decision:d-1" in state
    book.resolve("d-1", "b")
    book.save()
    assert "d-1" not in book.pending and "decision:d-1" not in state
    assert state[INDEX_KEY]["channel_shown"] == {"web": [5.0]}  # contacts outlive the decision
    with pytest.raises(KeyError, match="d-1 is not pending"):
        book.details("d-1")


def test_a_record_reads_only_the_index_until_a_decision_is_needed() -> None:
    state = CountingState()
    first = CustomerDecisions(state)
    first.add("d-1", at=0.0, due=60.0, details=offers("a"))
    first.save()
    state.reads.clear()
    book = CustomerDecisions(state)
    assert state.reads == [INDEX_KEY]
    assert book.details("d-1").first == "a"
    book.details("d-1")
    assert state.reads == [INDEX_KEY, "decision:d-1"]  # read once per record


# Details as the ranker stored them before they were a typed record (layout 1)
LAYOUT_1 = {
    "offers": {
        "card": {"x": {"age": 0.3}, "p": 0.2, "v": 50.0, "q": 0.9, "r": 1},
        "loan": {"x": {"age": 0.3}, "p": 0.1, "v": 80.0},  # before propensities and ranks
    },
    "first": "card",
    "shadow": {"propensity": 0.9, "target_probability": 0.5},
    "challenger": "7",
    "customer": "C1",
    "model": "bayesian_logistic-12",
    "feature_set": "default/6",
}


def test_details_stored_in_the_earlier_layout_still_load() -> None:
    state = MemoryState()
    state.set(INDEX_KEY, {"pending": {"d-1": {"at": 0.0, "due": 60.0,
                                              "shown": {"card": None, "loan": None}}},
                          "channel_shown": {}})  # fmt: skip
    state.set("decision:d-1", LAYOUT_1)
    details = CustomerDecisions(state).details("d-1")
    assert details.offers["card"] == PendingOffer({"age": 0.3}, 0.2, 50.0, propensity=0.9, rank=1)
    assert details.offers["loan"] == PendingOffer({"age": 0.3}, 0.1, 80.0)
    assert (details.first, details.customer, details.model) == ("card", "C1",
                                                                "bayesian_logistic-12")  # fmt: skip
    assert details.shadow == LAYOUT_1["shadow"] and details.challenger == "7"


def test_details_are_stored_with_their_layout_and_read_back_whole() -> None:
    state = MemoryState()
    written = offers("a", "b")
    CustomerDecisions(state).add("d-1", at=0.0, due=60.0, details=written)
    assert state["decision:d-1"]["layout"] == LAYOUT
    book = CustomerDecisions(state)
    book.index["pending"]["d-1"] = {"at": 0.0, "due": 60.0, "shown": {"a": None, "b": None}}
    assert book.details("d-1") == written


def test_fields_of_a_later_layout_are_kept_not_dropped() -> None:
    stored = {**offers("a").stored(), "layout": LAYOUT + 1, "reason": "new"}
    details = DecisionDetails.from_stored(stored)
    assert details.extra == {"reason": "new"} and details.stored()["reason"] == "new"
