"""Progress is observable: lag and the oldest waiting record per partition, and stalls are loud."""

from __future__ import annotations

import gc
import json
import threading
from datetime import UTC, datetime

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from typer.testing import CliRunner

from pipeline.cli.app import app
from pipeline.contracts import topics
from pipeline.errors import NboError, StreamStalled
from pipeline.kafka.clients import producer_config
from pipeline.kafka.instance import Instance
from pipeline.kafka.progress import (
    GroupProbe,
    PartitionLag,
    ProgressMonitor,
    ReaderProbe,
    StallWatch,
)
from pipeline.kafka.quix import freeze_what_lives_as_long_as_the_process, run_watched
from pipeline.settings import Settings


def _produce_one_by_one(settings: Settings, topic: str, count: int, partition: int = 0) -> None:
    """One batch per record: the embedded broker then gives exact end offsets."""
    producer = Producer(producer_config(settings, settings.broker_address or ""))
    for index in range(count):
        value = {"event_id": f"e{index}", "at": datetime.now(UTC).isoformat()}
        producer.produce(settings.topic_name(topic), json.dumps(value).encode(), b"C1",
                         partition=partition)  # fmt: skip
        assert producer.flush(30) == 0


def _commit(settings: Settings, group: str, topic: str, partition: int, offset: int) -> None:
    consumer = Consumer({**settings.kafka_config(settings.broker_address or ""), "group.id": group})
    try:
        consumer.commit(
            offsets=[TopicPartition(settings.topic_name(topic), partition, offset)],
            asynchronous=False,
        )
    finally:
        consumer.close()


def test_the_probe_reads_lag_and_the_age_of_the_first_waiting_record(settings: Settings) -> None:
    topics.create_topics(settings, settings.broker_address or "")
    _produce_one_by_one(settings, "events", 10)
    _commit(settings, "g-probe", "events", 0, 4)
    probe = GroupProbe(settings, settings.broker_address or "", "g-probe", ["events"])
    try:
        lags = {p.name: p for p in probe.sample()}
    finally:
        probe.close()
    waiting = lags["events[0]"]
    assert (waiting.committed, waiting.end, waiting.lag) == (4, 10, 6)
    assert waiting.oldest_age is not None and 0 <= waiting.oldest_age < 120
    assert lags["events[1]"].lag == 0 and lags["events[1]"].oldest_age is None


def test_a_reader_without_a_group_is_watched_at_the_positions_it_reports(
    settings: Settings,
) -> None:
    topics.create_topics(settings, settings.broker_address or "")
    _produce_one_by_one(settings, "events", 10)
    probe = ReaderProbe(settings, settings.broker_address or "", "impact", ["events"])
    try:
        before = {p.name: p for p in probe.sample()}  # nothing reported: at the start
        probe.report([TopicPartition(settings.topic_name("events"), 0, 7)])
        after = {p.name: p for p in probe.sample()}
    finally:
        probe.close()
    assert (before["events[0]"].committed, before["events[0]"].lag) == (0, 10)
    assert (after["events[0]"].committed, after["events[0]"].lag) == (7, 3)
    assert after["events[0]"].oldest_age is not None and after["events[1]"].lag == 0


def _produce_in_a_transaction(settings: Settings, topic: str, count: int) -> None:
    """As an exactly-once μ-product writes: the records, then the transaction's commit marker
    (an offset of its own, after them)."""
    producer = Producer(
        {**producer_config(settings, settings.broker_address or ""),
         "transactional.id": f"{settings.topic_prefix}-{topic}-writer"}
    )  # fmt: skip
    producer.init_transactions(30)
    producer.begin_transaction()
    for index in range(count):
        producer.produce(settings.topic_name(topic), json.dumps({"n": index}).encode(), b"C1",
                         partition=0)  # fmt: skip
    producer.commit_transaction(30)


@pytest.mark.real_kafka
def test_a_group_past_the_last_record_of_a_transaction_is_caught_up_not_stalled(
    settings: Settings,
) -> None:
    topics.create_topics(settings, settings.broker_address or "")
    _produce_in_a_transaction(settings, "events", 3)  # offsets 0-2, the marker at 3
    _commit(settings, "g-idle", "events", 0, 3)  # every record processed, as Quix commits it
    probe = GroupProbe(settings, settings.broker_address or "", "g-idle", ["events"])
    watch = StallWatch(stall_timeout=60)
    try:
        idle = {p.name: p for p in probe.sample()}["events[0]"]
        assert (idle.committed, idle.lag, idle.oldest_age) == (3, 0, None)
        assert watch.observe([idle], now=0.0) == watch.observe([idle], now=600.0) == []
        _produce_in_a_transaction(settings, "events", 1)  # a record waits behind the marker
        waiting = {p.name: p for p in probe.sample()}["events[0]"]
    finally:
        probe.close()
    assert waiting.committed == 3 and waiting.lag > 0 and waiting.oldest_age is not None


class _LostClient:
    """A client that lost its broker: every read fails, as after a broker is killed; closing
    it may fail too."""

    def __init__(self, close_fails: bool) -> None:
        self.close_fails, self.closed = close_fails, False

    def committed(self, *_args: object, **_kwargs: object) -> None:
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "requests queued for a dead broker"))

    def list_topics(self, *_args: object, **_kwargs: object) -> None:
        self.committed()

    def close(self) -> None:
        self.closed = True
        if self.close_fails:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "close: broker gone"))


@pytest.mark.parametrize("close_fails", [False, True], ids=["closes", "close fails"])
def test_a_probe_that_failed_to_read_starts_over_with_a_new_client(
    settings: Settings, close_fails: bool
) -> None:
    topics.create_topics(settings, settings.broker_address or "")
    _produce_one_by_one(settings, "events", 3)
    _commit(settings, "g-probe-lost", "events", 0, 1)
    probe = GroupProbe(settings, settings.broker_address or "", "g-probe-lost", ["events"])
    probe.sample()  # its partitions are known
    lost = _LostClient(close_fails)
    probe._consumer = lost  # type: ignore[assignment]
    try:
        with pytest.raises(KafkaException, match="dead broker"):
            probe.sample()
        lags = {p.name: p for p in probe.sample()}  # the next look reads through a new client
    finally:
        probe.close()
    assert lost.closed
    assert (lags["events[0]"].committed, lags["events[0]"].end) == (1, 3)


def test_nbo_status_says_which_partitions_wait_without_progress(settings: Settings) -> None:
    topics.create_topics(settings, settings.broker_address or "")
    _produce_one_by_one(settings, "events", 3, partition=1)
    group = settings.consumer_group("valid-offers")
    env = {
        "NBO_BROKER_ADDRESS": settings.broker_address or "",
        "NBO_TOPIC_PREFIX": settings.topic_prefix,
        "COLUMNS": "200",
    }
    runner = CliRunner()
    _commit(settings, group, "events", 1, 1)
    stuck = runner.invoke(app, ["status", "--interval", "0.2"], env=env, catch_exceptions=False)
    assert stuck.exit_code == 2, stuck.output
    assert "valid-offers: records waiting and no progress in 0 s on events[1]" in stuck.output
    assert "ranker:" not in stuck.output  # its group has nothing waiting

    _commit(settings, group, "events", 1, 3)
    caught_up = runner.invoke(app, ["status", "--interval", "0.2"], env=env, catch_exceptions=False)
    assert caught_up.exit_code == 0, caught_up.output
    assert f"{group}" in caught_up.output


def test_a_partition_is_stalled_only_while_records_wait_and_its_offset_stays() -> None:
    watch = StallWatch(stall_timeout=30)
    idle = PartitionLag("events", 0, 50, 50, None)
    assert watch.observe([idle], now=0) == [] and watch.observe([idle], now=100) == []
    waiting = PartitionLag("events", 0, 50, 60, 3.0)
    assert watch.observe([waiting], now=110) == []  # it was idle until now
    assert watch.observe([waiting], now=139) == []
    assert [p.name for p in watch.observe([waiting], now=140)] == ["events[0]"]
    moving = PartitionLag("events", 0, 55, 60, 1.0)
    assert watch.observe([moving], now=141) == []


class _FrozenProbe:
    """A group that has records waiting on one partition and never moves."""

    group = "g"

    def __init__(self) -> None:
        self.closed = False

    def sample(self) -> list[PartitionLag]:
        return [PartitionLag("events", 1, 10, 25, 42.0), PartitionLag("events", 0, 7, 7, None)]

    def close(self) -> None:
        self.closed = True


def test_the_monitor_stops_a_stalled_app_and_names_its_partitions(caplog) -> None:  # type: ignore[no-untyped-def]
    stopped = threading.Event()
    probe = _FrozenProbe()
    monitor = ProgressMonitor(
        probe,  # type: ignore[arg-type]
        "valid-offers",
        interval=0.01,
        stall_timeout=0.05,
        on_stall=stopped.set,
        exit_grace=30.0,  # the test stops it well before: it must not exit the test run
    )
    with caplog.at_level("INFO", logger="pipeline.kafka.progress"):
        monitor.start()
        assert stopped.wait(timeout=30), "the monitor never reported the stall"
        monitor.stop()
    assert [p.name for p in monitor.stalled] == ["events[1]"]
    assert probe.closed
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "valid-offers STALLED" in errors[0]
    assert "events[1] (committed 10, end 25)" in errors[0] and "events[0]" not in errors[0]
    assert any("lag 15 oldest 42.0 s" in r.getMessage() for r in caplog.records)


class _WedgedApp:
    """Stands in for a Quix app whose loop makes no progress until it is stopped."""

    def __init__(self) -> None:
        self._stopped = threading.Event()
        self.failed = False

    def run(self) -> None:
        assert self._stopped.wait(timeout=60), "nobody stopped the wedged app"

    def stop(self, fail: bool = False) -> None:
        self.failed = fail
        self._stopped.set()


def test_a_stalled_stage_stops_and_raises_naming_its_partitions(settings: Settings) -> None:
    topics.create_topics(settings, settings.broker_address or "")
    _produce_one_by_one(settings, "events", 3, partition=1)
    watched = settings.model_copy(update={"progress_interval": 0.1, "stall_timeout": 0.5})
    _commit(settings, watched.consumer_group("valid-offers"), "events", 1, 1)
    app = _WedgedApp()
    with pytest.raises(StreamStalled, match=r"valid-offers made no progress .* on events\[1\]"):
        instance = Instance("valid-offers", "test-0", settings.state_dir)
        run_watched(app, watched, settings.broker_address or "", instance, ["events"])  # type: ignore[arg-type]
    assert app.failed  # stopped as failed: Quix does not commit what it was doing


def test_nbo_status_without_topics_says_what_to_do(settings: Settings) -> None:
    env = {"NBO_BROKER_ADDRESS": settings.broker_address or "", "NBO_TOPIC_PREFIX": "nothing-here"}
    result = CliRunner().invoke(app, ["status", "--interval", "0.1"], env=env)
    assert isinstance(result.exception, NboError)  # `nbo` prints it and exits 1
    assert "no source topics of the μ-products here (prefix 'nothing-here')" in str(
        result.exception
    )


class _UnreachableProbe(_FrozenProbe):
    def sample(self) -> list[PartitionLag]:
        raise RuntimeError("Failed to get watermark offsets: Local: Timed out")


def test_a_group_whose_progress_cannot_be_read_for_the_stall_timeout_is_stalled(caplog) -> None:  # type: ignore[no-untyped-def]
    stopped = threading.Event()
    monitor = ProgressMonitor(
        _UnreachableProbe(),  # type: ignore[arg-type]
        "ranker",
        interval=0.01,
        stall_timeout=0.1,
        on_stall=stopped.set,
        exit_grace=30.0,  # the test stops it well before: it must not exit the test run
    )
    with caplog.at_level("INFO", logger="pipeline.kafka.progress"):
        monitor.start()
        assert stopped.wait(timeout=30), "a blind monitor never gave up"
        monitor.stop()
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "ranker STALLED: its progress could not be read" in errors[0]
    assert "Local: Timed out" in errors[0]


def test_after_the_freeze_a_collection_walks_only_what_was_made_since() -> None:
    class Node:
        def __init__(self) -> None:
            self.me = self  # a cycle: only the collector can free it

    living = [Node() for _ in range(20_000)]  # what start-up leaves: it lives on
    try:
        walked_before = len(gc.get_objects())
        frozen = freeze_what_lives_as_long_as_the_process()
        assert frozen >= len(living)
        assert len(gc.get_objects()) <= walked_before - len(living)
        # garbage made after the freeze is still found and freed
        garbage = [Node() for _ in range(100)]
        del garbage
        assert gc.collect() >= 100
    finally:
        gc.unfreeze()
