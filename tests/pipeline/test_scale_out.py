"""Scale-out: two rankers in one consumer group share four partitions, and one takes over
when the other stops."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from pipeline.settings import Settings
from tests.factories import START, customer, event, eventually, with_offers
from tests.streams import outputs, running, send

PEOPLE = [f"S{i:03d}" for i in range(40)]  # keys spread over all four partitions
BOUND = 90.0


def decide_batch(settings: Settings, batch: str, already: int) -> list[dict[str, Any]]:
    """Send one event per customer and return the decisions of this batch (waits, bounded)."""
    at = START + timedelta(minutes=len(batch))
    send(settings, "events", [(c, event(f"{batch}-{c}", c, at)) for c in PEOPLE])
    expected = {f"d-{batch}-{c}" for c in PEOPLE}
    read = [already + len(PEOPLE)]

    def batch_decided() -> list[dict[str, Any]] | None:
        decisions = [
            d
            for d in outputs(settings, "next_best_offers", read[0], timeout=BOUND)
            if d["decision_id"] in expected
        ]
        if {d["decision_id"] for d in decisions} >= expected:
            return decisions
        read[0] += 1  # a duplicate from a rebalance: wait for one more record
        return None

    return eventually(batch_decided, within=BOUND, what=f"every decision of batch {batch}")


def test_two_rankers_share_partitions_and_one_takes_over(make_settings) -> None:  # type: ignore[no-untyped-def]
    settings = with_offers(
        make_settings(topic_partitions=4, exploration="greedy", mlflow_tracking=False)
    )
    send(settings, "customers", [(c, customer(c, "mass")) for c in PEOPLE])
    # each instance has its own state and model checkpoint, as on two machines
    first = settings.model_copy(update={"state_dir": settings.state_dir / "a"})
    second = settings.model_copy(update={"state_dir": settings.state_dir / "b"})
    seen = 0
    with running(settings, "run", "valid-offers"), running(first, "run", "ranker"):
        warm = decide_batch(settings, "warm", seen)
        seen += len(warm)
        with running(second, "run", "ranker"):
            for attempt in range(30):  # bounded: until the group has rebalanced over both
                batch = decide_batch(settings, f"both{attempt}", seen)
                seen += len(batch)
                if len({d["instance"] for d in batch}) == 2:
                    break
            counts = Counter(d["decision_id"] for d in batch)
            assert len({d["instance"] for d in batch}) == 2  # both decide
            assert set(counts.values()) == {1} and len(counts) == len(PEOPLE)  # each once
            by_customer = {d["customer_id"]: d["instance"] for d in batch}
        after = decide_batch(settings, "after", seen)  # the second one has stopped
    counts = Counter(d["decision_id"] for d in after)
    assert set(counts.values()) == {1} and len(counts) == len(PEOPLE)
    # the first one, the instance that decided alone before the second started, took over every
    # partition, the second's customers included
    assert {d["instance"] for d in after} == {d["instance"] for d in warm}
    assert len({by_customer[d["customer_id"]] for d in after}) == 2
