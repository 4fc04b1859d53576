"""Scale-out: two rankers in one consumer group share four partitions, one takes over when the
other stops, and one learner learns every label both tell."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import timedelta
from typing import Any

from pipeline.settings import Settings
from tests.factories import START, customer, event, eventually, interaction, with_offers
from tests.pipeline.test_learner_stream import champion_after
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
    # each instance has its own state and id, as on two machines
    first = settings.model_copy(update={"state_dir": settings.state_dir / "a", "instance_id": "a"})
    second = settings.model_copy(update={"state_dir": settings.state_dir / "b", "instance_id": "b"})
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


def answer(settings: Settings, decisions: list[dict[str, Any]], minute: int) -> None:
    """The channel shows each decision's first offer; even customers accept it, odd dismiss it."""
    at = START + timedelta(hours=1, minutes=minute)
    records = []
    for d in decisions:
        first, customer_id = d["offers"][0]["offer_id"], d["customer_id"]
        outcome = "accept" if int(customer_id[1:]) % 2 == 0 else "dismiss"
        records += [
            interaction(d["decision_id"], customer_id, first, "impression", at),
            interaction(d["decision_id"], customer_id, first, outcome, at),
        ]
    send(settings, "interactions", records)


def test_two_rankers_and_one_learner_learn_every_label_exactly_once(make_settings) -> None:  # type: ignore[no-untyped-def]
    """Every label both rankers tell is learned once, across a restart of the learner, and both
    rankers decide with the learner's models, in the order it published them."""
    settings = with_offers(
        make_settings(
            topic_partitions=4, exploration="greedy", top_k=1, mlflow_tracking=False,
            model_publish_interval=0.3,
        )
    )  # fmt: skip
    send(settings, "customers", [(c, customer(c, "mass")) for c in PEOPLE])
    first = settings.model_copy(update={"state_dir": settings.state_dir / "a", "instance_id": "a"})
    second = settings.model_copy(update={"state_dir": settings.state_dir / "b", "instance_id": "b"})
    seen, decided = 0, []
    with (
        running(settings, "run", "valid-offers"),
        running(first, "run", "ranker"),
        running(second, "run", "ranker"),
    ):
        with running(settings, "run", "learner"):
            for n in range(3):
                batch = decide_batch(settings, f"b{n}", seen)
                seen, decided = seen + len(batch), decided + batch
                answer(settings, batch, n)
            champion_after(settings, 3 * len(PEOPLE), "the first three batches learned")
        # the learner stopped; the rankers go on telling labels, a new learner resumes
        for n in range(3, 5):
            batch = decide_batch(settings, f"b{n}", seen)
            seen, decided = seen + len(batch), decided + batch
            answer(settings, batch, n)
        with running(settings, "run", "learner"):
            last = champion_after(settings, 5 * len(PEOPLE), "every label, after the restart")
            batch = decide_batch(settings, "after", seen)
            decided += batch
    feedback = outputs(settings, "feedback", 5 * len(PEOPLE))
    told = Counter((f["decision_id"], f["offer_id"]) for f in feedback)
    assert len(told) == 5 * len(PEOPLE)  # one label per shown offer
    assert last.labels_learned == len(told)  # each learned once: none lost, none twice
    instances = {d["instance"] for d in decided}
    assert len(instances) == 2  # both rankers decided
    # each follows the one model, in the order it was published: a batch is sent once the one
    # before is decided, so no decision of a batch was made with an older model than one of the
    # batch before (within a batch, records of different partitions are read in no fixed order)
    batches: dict[tuple[str, str], list[int]] = {}
    for d in decided:
        batch_of = d["decision_id"].split("-")[1]
        batches.setdefault((d["instance"], batch_of), []).append(
            int(d["model_version"].rsplit("-", 1)[1])
        )
    for instance in instances:
        order = [b for b in ("b0", "b1", "b2", "b3", "b4", "after") if (instance, b) in batches]
        for before, after in itertools.pairwise(order):
            assert max(batches[instance, before]) <= min(batches[instance, after]), instance
    assert {d["model_version"] for d in batch} <= {f"bayesian_logistic-{last.labels_learned}"}
