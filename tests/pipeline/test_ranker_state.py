"""A customer's pending decisions in the ranker: bounded, and cheap to read on every record."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.next_best_offer.state import (
    INDEX_KEY,
    PENDING_PER_CUSTOMER,
    CustomerDecisions,
    MemoryState,
)


class CountingState(MemoryState):
    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    def get(self, key: str, default: Any = None) -> Any:
        self.reads.append(key)
        return super().get(key, default)


def offers(*ids: str) -> dict[str, Any]:
    return {offer_id: {"x": {"bias": 1.0}, "p": 0.1, "v": 10.0} for offer_id in ids}


def test_the_oldest_pending_decision_is_forgotten_with_its_details() -> None:
    state = MemoryState()
    book = CustomerDecisions(state)
    for n in range(PENDING_PER_CUSTOMER + 3):
        book.add(f"d-{n}", at=float(n), due=float(n) + 60, offers=offers("a"), first="a")
    book.save()
    assert len(book.pending) == PENDING_PER_CUSTOMER
    assert "d-0" not in book.pending and "d-2" not in book.pending and "d-3" in book.pending
    details = [key for key in state if key != INDEX_KEY]
    assert len(details) == PENDING_PER_CUSTOMER and "decision:d-0" not in details


def test_a_decision_is_dropped_with_its_details_once_each_offer_is_resolved() -> None:
    state = MemoryState()
    book = CustomerDecisions(state)
    book.add("d-1", at=0.0, due=60.0, offers=offers("a", "b"), first="a")
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
    first.add("d-1", at=0.0, due=60.0, offers=offers("a"), first="a")
    first.save()
    state.reads.clear()
    book = CustomerDecisions(state)
    assert state.reads == [INDEX_KEY]
    assert book.details("d-1")["first"] == "a"
    book.details("d-1")
    assert state.reads == [INDEX_KEY, "decision:d-1"]  # read once per record
