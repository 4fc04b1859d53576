"""Faults: a μ-product killed with SIGKILL mid-stream, and a broker that is not there.

Guarantee tested: **at-least-once with de-duplication by id**. Every event gets a decision
after a restart; a decision may be emitted twice (its id, `d-<event id>`, is the same both
times, so a channel de-duplicates on it); and learning is exact: a label the restarted ranker
tells again is dropped by the learner, which learns every label once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from local_kafka.cluster import free_port
from pipeline.kafka import processes
from pipeline.kafka.clients import consume
from pipeline.settings import Settings
from tests.factories import START, customer, event, eventually, interaction, with_offers
from tests.pipeline.test_learner_stream import champion_after
from tests.streams import outputs, running, send

COMMIT_WAIT = 30.0


def wait_for_commit(settings: Settings, stage: str, logical_topic: str, total: int) -> None:
    """Block until `stage` has committed every record of `logical_topic` (bounded)."""
    topic = settings.topic_name(logical_topic)
    consumer = Consumer(
        {
            **settings.kafka_config(settings.broker_address or ""),
            "group.id": settings.consumer_group(stage),
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        eventually(
            lambda: (
                sum(max(tp.offset, 0) for tp in consumer.committed(partitions, timeout=5)) >= total
            ),
            within=COMMIT_WAIT,
            what=f"{stage} to commit all {total} records of {topic}",
        )
    finally:
        consumer.close()


def kill(process: subprocess.Popen[bytes]) -> None:
    process.kill()  # SIGKILL: no shutdown hook runs, nothing is flushed or checkpointed
    process.wait(timeout=10)


@pytest.fixture
def loop(make_settings) -> Iterator[Settings]:  # type: ignore[no-untyped-def]
    settings = make_settings(
        exploration="greedy", top_k=2, model_publish_interval=0.3, mlflow_tracking=False
    )
    with running(with_offers(settings), "run", "valid-offers"):
        yield settings


def test_ranker_killed_mid_stream_decides_every_event_and_no_label_is_lost_or_doubled(
    loop: Settings,
) -> None:
    people = [f"K{i:02d}" for i in range(30)]
    send(loop, "customers", [(c, customer(c, "mass")) for c in people])
    with running(loop, "run", "ranker") as ranker:
        send(loop, "events", [(c, event(f"e1-{c}", c, START)) for c in people])
        first = outputs(loop, "next_best_offers", len(people))
        labels = []
        for decision in first:
            d, c, at = (
                decision["decision_id"],
                decision["customer_id"],
                START + timedelta(minutes=5),
            )
            shown, other = (o["offer_id"] for o in decision["offers"])
            labels += [
                interaction(d, c, shown, "impression", at),
                interaction(d, c, shown, "accept", at),
                interaction(d, c, other, "impression", at),
                interaction(d, c, other, "dismiss", at),
            ]
        send(loop, "interactions", labels)
        wait_for_commit(loop, "ranker", "interactions", len(labels))  # told and committed
        at = START + timedelta(hours=1)
        send(loop, "events", [(c, event(f"e2-{c}", c, at)) for c in people])  # in flight
        kill(ranker)

    with running(loop, "run", "ranker"), running(loop, "run", "learner"):
        champion_after(loop, 2 * len(people), "the labels told before the kill")
        send(loop, "events", [("K00", event("e3-probe", "K00", START + timedelta(hours=2)))])
        expected = {f"d-e{n}-{c}" for n in (1, 2) for c in people} | {"d-e3-probe"}

        def every_event_decided() -> list[dict[str, Any]] | None:
            decisions = outputs(loop, "next_best_offers", len(expected))
            return decisions if {d["decision_id"] for d in decisions} >= expected else None

        decisions = eventually(every_event_decided, within=60, what="a decision for every event")
        ids = Counter(d["decision_id"] for d in decisions)
        learned = champion_after(loop, 2 * len(people), "the labels, after every decision")
    assert set(ids) == expected  # every event decided; some may have been decided twice
    told = Counter((f["decision_id"], f["offer_id"]) for f in outputs(loop, "feedback", 60))
    assert len(told) == 2 * len(people)  # every label told, some perhaps twice
    # the 60 labels of before the kill, each learned exactly once
    assert learned.labels_learned == 2 * len(people)


def test_valid_offers_killed_mid_stream_emits_for_every_event(make_settings) -> None:  # type: ignore[no-untyped-def]
    settings = with_offers(make_settings(mlflow_tracking=False))
    people = [f"V{i:03d}" for i in range(100)]
    send(settings, "customers", [(c, customer(c, "mass")) for c in people])
    events = [
        (c, event(f"e-{c}-{n}", c, START + timedelta(minutes=n))) for n in range(3) for c in people
    ]
    with running(settings, "run", "valid-offers") as valid_offers:
        send(settings, "events", events[:150])
        outputs(settings, "valid_offers", 50)  # mid-stream
        kill(valid_offers)
    send(settings, "events", events[150:])
    with running(settings, "run", "valid-offers"):
        expected = {e["event_id"] for _, e in events}

        def every_event_emitted() -> Counter[str] | None:
            emitted = Counter(
                v["event_id"] for v in outputs(settings, "valid_offers", len(expected))
            )
            return emitted if set(emitted) >= expected else None

        emitted = eventually(every_event_emitted, within=60, what="valid offers for every event")
    assert set(emitted) == expected  # at least once each; re-emitted ones carry the same event id


@pytest.mark.parametrize("stage", ["valid-offers", "ranker"])
def test_a_broker_that_is_not_there_stops_a_stage_with_a_clear_error(
    stage: str, make_settings
) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(broker_address=f"127.0.0.1:{free_port()}", broker_start_timeout=2)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", stage],
        env=processes.environment(settings),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert b"did not answer a metadata request within 2 s" in result.stderr
    assert time.monotonic() - started < 30  # bounded: the wait, plus start-up


SOURCES = (
    "offers",
    "customers",
    "validation_rules",
    "eligibilities",
    "events",
    "interactions",
    "valid_offers",
)
junk_bytes = st.binary(max_size=40).filter(lambda raw: raw.strip() not in (b"null", b""))
junk_object = st.dictionaries(
    st.text(max_size=6).map(lambda name: f"x_{name}"),  # never a field of any nbo record
    st.one_of(st.none(), st.integers(), st.text(max_size=8)),
    max_size=4,
)
bad_record = st.tuples(
    st.sampled_from(SOURCES),
    st.text(alphabet="ABC123", min_size=1, max_size=6),
    st.one_of(junk_bytes, junk_object.map(lambda value: json.dumps(value).encode())),
)


@pytest.fixture
def whole_loop(loop: Settings) -> Iterator[Settings]:
    send(loop, "customers", [("G01", customer("G01", "mass"))])
    with running(loop, "run", "ranker"):
        yield loop


def dead_positions(settings: Settings) -> Counter[str]:
    """Distinct bad records dead-lettered so far, per source topic (two stages read offers)."""
    topic = settings.topic_name("dead_letter")
    letters = [r.json() for r in consume(settings, settings.broker_address or "", topic)]
    assert all(letter["reason"] for letter in letters)
    positions = {(d["source_topic"], d["partition"], d["offset"]) for d in letters}
    return Counter(topic.rsplit(".", 1)[-1] for topic, _, _ in positions)


@hypothesis_settings(
    max_examples=6,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    phases=[Phase.explicit, Phase.generate],  # no shrinking: each example waits on a stream
)
@given(batch=st.lists(bad_record, min_size=1, max_size=8))
def test_random_bad_records_on_every_source_go_to_dead_letters_and_good_ones_are_decided(
    whole_loop: Settings, batch: list[tuple[str, str, bytes]]
) -> None:
    settings = whole_loop
    sent = Counter(topic for topic, _, _ in batch)
    before = dead_positions(settings)
    for topic, key, value in batch:
        send(settings, topic, [(key, value)])
    good = f"good-{uuid.uuid4().hex[:8]}"
    send(settings, "events", [("G01", event(good, "G01", START))])

    def every_bad_record_dead_lettered() -> Counter[str] | None:
        grown = dead_positions(settings) - before
        return grown if all(grown[topic] >= n for topic, n in sent.items()) else None

    grown = eventually(every_bad_record_dead_lettered, within=60, what=f"dead letters for {sent}")
    assert grown == sent  # every bad record, once, and nothing else
    read = [1]

    def good_event_decided() -> bool:
        decisions = outputs(settings, "next_best_offers", read[0])
        read[0] = len(decisions) + 1  # not there yet: wait for one more decision
        return good in {d["event_id"] for d in decisions}

    eventually(good_event_decided, within=60, what=f"the decision for the good event {good}")
