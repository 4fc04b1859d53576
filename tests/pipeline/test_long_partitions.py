"""A partition made of many small producer batches, as a steady stream of journey events makes one.

The embedded broker cuts each fetch at the consumer's `fetch.wait.max.ms` and reads a partition
in time that grows with its number of record batches: with a 10 ms wait (nbo's default until the
stall was found), a partition of 40,000 one-record batches gives Valid Offers nothing, for ever.
Both sides are tested: the default wait serves such a partition, and a wait too short for it is a
loud stall that stops the process, not a silent one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Producer

from pipeline.contracts import topics
from pipeline.kafka.clients import producer_config
from pipeline.settings import Settings
from tests.streams import outputs, running

BATCHES = 40_000
START = datetime(2026, 11, 1, tzinfo=UTC)


def fill_with_one_record_batches(settings: Settings, count: int) -> None:
    """`count` events of one customer (one partition), each in a record batch of its own."""
    topics.create_topics(settings, settings.broker_address or "")
    producer = Producer(
        {**producer_config(settings, settings.broker_address or ""), "linger.ms": 0,
         "batch.num.messages": 1}
    )  # fmt: skip
    topic = settings.topic_name("events")
    for index in range(count):
        event = {
            "event_id": f"e{index}",
            "customer_id": "C1",
            "event_type": "app_login",
            "timestamp": (START + timedelta(seconds=index)).isoformat(),
            "channel": "web",
        }
        producer.produce(topic, json.dumps(event).encode(), b"C1")
        producer.poll(0)
    assert producer.flush(60) == 0


def test_valid_offers_reads_a_partition_of_many_small_batches(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(mlflow_tracking=False)
    fill_with_one_record_batches(settings, BATCHES)
    with running(settings, "run", "valid-offers"):
        decided = outputs(settings, "valid_offers", BATCHES, timeout=240)
    assert {v["event_id"] for v in decided} == {f"e{i}" for i in range(BATCHES)}


@pytest.mark.embedded_broker  # a real Kafka answers a waiting fetch as soon as it has data
def test_a_fetch_wait_too_short_for_the_partition_is_a_loud_stall(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        mlflow_tracking=False, fetch_wait_max_ms=10, progress_interval=1.0, stall_timeout=10.0
    )
    fill_with_one_record_batches(settings, BATCHES)
    with running(settings, "run", "valid-offers") as process:
        code = process.wait(timeout=240)  # bounded: the stall timeout plus start and one look
    assert code != 0
    log = (settings.state_dir.parent / "run-valid-offers.log").read_text()
    assert re.search(
        r"ERROR pipeline.kafka.progress: valid-offers STALLED: no progress for \d+ s with records "
        r"waiting on events\[\d\] \(committed 0, end 40000\)",
        log,
    )
    assert "made no progress for 10 s with records waiting on events[" in log
