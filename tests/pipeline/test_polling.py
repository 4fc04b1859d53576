"""A μ-product's consumer hands over a record as soon as it is there, whatever its poll timeout:
the timeout only sets how often an idle app looks up (`pipeline.kafka.quix.PromptConsumer`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from confluent_kafka import TopicPartition

from pipeline.contracts.topics import create_topics
from pipeline.kafka.clients import produce
from pipeline.kafka.quix import PromptConsumer
from pipeline.settings import Settings

BATCH = 500  # what Quix asks for at once: its partition buffer's size


@pytest.fixture
def consumer(settings: Settings) -> Iterator[PromptConsumer]:
    create_topics(settings, settings.broker_address or "")
    consumer = PromptConsumer(
        broker_address=settings.broker_address or "",
        consumer_group=f"{settings.topic_prefix}-polling",
        auto_offset_reset="earliest",
        auto_commit_enable=False,
        extra_config={"fetch.wait.max.ms": 100},
    )
    consumer.assign([TopicPartition(settings.topic_name("events"), p) for p in range(3)])
    try:
        yield consumer
    finally:
        consumer.close()


def read(consumer: PromptConsumer, count: int, timeout: float) -> list[bytes]:
    """Values read by batch reads of `timeout` each until `count` have come (bounded: 30 s)."""
    values: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(values) < count and time.monotonic() < deadline:
        values += [m.value() for m in consumer.consume(BATCH, timeout) if m.error() is None]
    return values


def test_a_batch_read_returns_with_the_first_record_not_at_its_timeout(
    settings: Settings, consumer: PromptConsumer
) -> None:
    """librdkafka's own batch read would wait for 500 records or the whole 60 s."""
    read(consumer, 0, 0)  # joins the partitions
    record = [("c1", b"first")]
    topic = settings.topic_name("events")
    sender = threading.Timer(0.5, produce, (settings, settings.broker_address, topic, record))
    sender.start()
    started = time.monotonic()
    try:
        batch = consumer.consume(BATCH, timeout=60)
    finally:
        sender.join()
    assert [m.value() for m in batch if m.error() is None] == [b"first"]
    assert time.monotonic() - started < 30


def test_every_record_there_is_read_and_an_idle_read_waits_its_timeout(
    settings: Settings, consumer: PromptConsumer
) -> None:
    records = [(f"c{i}", f"{i}".encode()) for i in range(40)]
    produce(settings, settings.broker_address or "", settings.topic_name("events"), records)
    values = read(consumer, len(records), timeout=1)
    assert sorted(values) == sorted(value for _, value in records)

    started = time.monotonic()
    assert consumer.consume(BATCH, timeout=0.3) == []
    assert time.monotonic() - started >= 0.3  # an idle app is not woken up before its timeout
