"""Plain Kafka clients for the tools around the stream: loading files, tailing, reading back.

The μ-product apps use Quix Streams; these helpers use confluent-kafka directly because a file
load or a `tail` needs no consumer group and no state.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from pipeline.errors import BrokerError
from pipeline.kafka.timing import timing_at
from pipeline.settings import Settings


@dataclass(frozen=True)
class KafkaRecord:
    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes | None
    timestamp_ms: int

    def json(self) -> Any:
        return json.loads(self.value) if self.value is not None else None


def producer_config(settings: Settings, bootstrap: str) -> dict[str, str | int | float]:
    """Config for every plain producer of nbo.

    `murmur2_random` is the Java clients' and Quix's partitioner: records keyed by a customer id
    must land on the same partition number in every topic, whoever produced them, or a
    customer's events, interactions and decisions meet different state stores. The linger is
    the setting's, else the broker's kind decides it (which takes one metadata request).
    """
    linger = settings.linger_ms
    return {
        **settings.kafka_config(bootstrap),
        "partitioner": "murmur2_random",
        "linger.ms": timing_at(settings, bootstrap).linger_ms if linger is None else linger,
    }


def produce(
    settings: Settings,
    bootstrap: str,
    topic: str,
    items: Iterable[tuple[str, bytes]],
    on_delivered: Callable[[int], None] | None = None,
) -> int:
    """Produce `(key, value)` pairs to `topic`, wait for every delivery, return the count."""
    producer = Producer({**producer_config(settings, bootstrap), "acks": "all"})
    failures: list[str] = []
    delivered = 0

    def _report(error: KafkaError | None, _message: Message) -> None:
        nonlocal delivered
        if error is not None:
            failures.append(str(error))
        else:
            delivered += 1
            if on_delivered:
                on_delivered(1)

    for key, value in items:
        while True:
            try:
                producer.produce(topic, key=key.encode(), value=value, on_delivery=_report)
                break
            except BufferError:  # local queue full: let deliveries drain, then retry
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(30)
    if remaining or failures:
        raise BrokerError(
            f"producing to {topic}: {len(failures)} failed, {remaining} undelivered "
            f"({failures[:3]})"
        )
    return delivered


def _to_record(message: Message) -> KafkaRecord:
    key = message.key()
    return KafkaRecord(
        topic=message.topic() or "",
        partition=message.partition() or 0,
        offset=message.offset() or 0,
        key=key.decode(errors="replace") if key is not None else None,
        value=message.value(),
        timestamp_ms=message.timestamp()[1],
    )


def assigned_from_start(
    settings: Settings,
    bootstrap: str,
    topics: Iterable[str],
    group: str = "nbo-reader",
    config: dict[str, Any] | None = None,
    tail: int | None = None,
) -> Consumer:
    """A consumer assigned every partition of `topics` (real names) from the beginning, or from
    the last `tail` records of each. It never joins `group` (librdkafka needs one) and commits
    nothing; a missing topic is a BrokerError."""
    consumer = Consumer(
        {
            **settings.kafka_config(bootstrap),
            "group.id": group,
            "enable.auto.commit": False,
            **(config or {}),
        }
    )
    try:
        metadata = consumer.list_topics(timeout=10)
        partitions = []
        for topic in topics:
            found = metadata.topics.get(topic)
            if found is None or found.error is not None:
                raise BrokerError(
                    f"topic {topic} does not exist on {bootstrap}; run `nbo topics create`"
                )
            for p in found.partitions:
                start = OFFSET_BEGINNING
                if tail is not None:
                    low, high = _watermarks(consumer, TopicPartition(topic, p))
                    start = max(low, high - tail)
                partitions.append(TopicPartition(topic, p, start))
    except BaseException:
        consumer.close()
        raise
    consumer.assign(partitions)
    return consumer


def _watermarks(consumer: Consumer, partition: TopicPartition, timeout: float = 10.0) -> Any:
    """A partition's (low, high) offsets. A topic created a moment ago may have no leader yet
    (NOT_LEADER_FOR_PARTITION): asked again until `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return consumer.get_watermark_offsets(partition, timeout)
        except KafkaException:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)  # between metadata requests; the loop is bounded by `timeout`


def consume(
    settings: Settings,
    bootstrap: str,
    topic: str,
    *,
    follow: bool = False,
    idle_timeout: float = 10.0,
) -> Iterator[KafkaRecord]:
    """Read `topic` from the beginning without a consumer group.

    Without `follow`, stop once every partition reports its end, so the call returns what is on
    the topic now. The end is taken from the fetch responses (partition EOF), not from
    ListOffsets: Tansu 0.6 answers ListOffsets with the last batch's base offset + 1.
    """
    consumer = assigned_from_start(
        settings, bootstrap, [topic], config={"enable.partition.eof": True}
    )
    try:
        unfinished = {tp.partition for tp in consumer.assignment()}
        while follow or unfinished:
            message = consumer.poll(idle_timeout if not follow else 1.0)
            if message is None:
                if follow:
                    continue
                raise BrokerError(
                    f"reading {topic}: no record within {idle_timeout} s, "
                    f"partitions {sorted(unfinished)} not read to their end"
                )
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    unfinished.discard(message.partition() or 0)
                    continue
                raise BrokerError(f"reading {topic}: {error}")
            yield _to_record(message)
    finally:
        consumer.close()


def read_at_least(
    settings: Settings, bootstrap: str, topic: str, count: int, timeout: float
) -> list[KafkaRecord]:
    """Read `topic` from the beginning until `count` records arrived; raise after `timeout`.

    For tools and tests that wait on a stream's output: a bounded wait on a condition.
    """
    deadline = time.monotonic() + timeout
    records: list[KafkaRecord] = []
    consumer = assigned_from_start(settings, bootstrap, [topic])
    try:
        while len(records) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"{topic}: {len(records)} of {count} records within {timeout:.0f} s"
                )
            for message in consumer.consume(num_messages=1000, timeout=min(remaining, 0.5)):
                if message.error() is None:
                    records.append(_to_record(message))
    finally:
        consumer.close()
    return records


def read_frame(settings: Settings, bootstrap: str, logical_topic: str) -> Any:
    """A topic as it is now, as a pandas DataFrame: one row per record, the JSON value's fields
    as columns, plus `_key`, `_partition`, `_offset` and `_timestamp`. For notebooks."""
    import pandas as pd  # only notebooks need pandas; the stream processes do not load it

    rows = [
        {
            **(record.json() or {}),
            "_key": record.key,
            "_partition": record.partition,
            "_offset": record.offset,
            "_timestamp": pd.Timestamp(record.timestamp_ms, unit="ms", tz="UTC"),
        }
        for record in consume(settings, bootstrap, settings.topic_name(logical_topic))
    ]
    return pd.DataFrame(rows)


def reader_from_start(
    settings: Settings, bootstrap: str, logical_topics: Iterable[str], group: str
) -> tuple[Consumer, dict[str, str]]:
    """`assigned_from_start` on `logical_topics`, with the fetch wait of long-running readers,
    and its map real topic name → logical name (for the demo's and the steady loop's views)."""
    names = {settings.topic_name(t): t for t in logical_topics}
    wait = timing_at(settings, bootstrap).fetch_wait_ms
    consumer = assigned_from_start(settings, bootstrap, names, group, {"fetch.wait.max.ms": wait})
    return consumer, names
