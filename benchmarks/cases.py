"""The benchmark cases. Each takes settings on a fresh topic prefix and returns its figures."""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from benchmarks import workload
from pipeline import connectors, processes, topics
from pipeline.kafka_io import consume, produce, producer_config
from pipeline.settings import Settings

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"
LOGS = Path(tempfile.mkdtemp(prefix="nbo-bench-logs-"))
WARM_UP = 0.1  # the first 10% of outputs include process start and group join: not counted


def load_events(settings: Settings, bootstrap: str, copies: int = 50) -> dict[str, Any]:
    """Validate and produce 50,000 journey events from a JSON Lines file, then read them back."""
    topics.create_topics(settings, bootstrap)
    lines = (SAMPLE / "events.jsonl").read_text().splitlines()
    path = Path(tempfile.mkdtemp(prefix="nbo-bench-")) / "events.jsonl"
    path.write_text("\n".join(lines * copies) + "\n")
    started = time.perf_counter()
    report = connectors.load_file(settings, bootstrap, "events", path)
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    read = sum(1 for _ in consume(settings, bootstrap, settings.topic_name("events")))
    read_seconds = time.perf_counter() - started
    return {
        "records": report.loaded,
        "load (validate + produce) rec/s": report.loaded / loaded,
        "read back rec/s": read / read_seconds,
    }


def output_rate(
    settings: Settings,
    bootstrap: str,
    topic: str,
    count: int,
    timeout: float,
    process: subprocess.Popen[bytes],
    log: Path,
) -> float:
    """Records/s arriving on `topic` between the warm-up mark and the `count`th record."""
    consumer = Consumer({**settings.kafka_config(bootstrap), "group.id": "nbo-bench-reader"})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    seen, warm_mark, warm_at = 0, max(1, int(count * WARM_UP)), 0.0
    deadline = time.monotonic() + timeout
    try:
        while seen < count:
            if time.monotonic() > deadline or process.poll() is not None:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
                raise RuntimeError(f"{topic}: {seen} of {count} outputs; process log:\n{tail}")
            for message in consumer.consume(num_messages=10_000, timeout=0.2):
                if message.error() is None:
                    seen += 1
                    if seen == warm_mark:
                        warm_at = time.perf_counter()
        return (seen - warm_mark) / (time.perf_counter() - warm_at)
    finally:
        consumer.close()


def _stream(settings: Settings, bootstrap: str, args: list[str], sink: str, count: int) -> float:
    log = LOGS / f"{settings.topic_prefix}.log"
    with processes.running(settings, args, log) as process:
        return output_rate(settings, bootstrap, settings.topic_name(sink), count, 240, process, log)


def _prepare(settings: Settings, bootstrap: str, events: list[tuple[str, bytes]]) -> None:
    topics.create_topics(settings, bootstrap)
    produce(settings, bootstrap, settings.topic_name("offers"), workload.offers(100))
    for topic, rules in workload.rules().items():
        produce(settings, bootstrap, settings.topic_name(topic), rules)
    produce(settings, bootstrap, settings.topic_name("customers"), workload.customers())
    produce(settings, bootstrap, settings.topic_name("events"), events)


def valid_offers_vs_passthrough(
    settings: Settings, bootstrap: str, count: int = 30_000
) -> dict[str, Any]:
    """Events/s through Valid Offers (100 offers, 20 rules) beside a pass-through Quix app."""
    events = workload.events(count)
    ceiling = settings.model_copy(update={"topic_prefix": settings.topic_prefix + "-pass"})
    _prepare(ceiling, bootstrap, events)
    passthrough = _stream(
        ceiling,
        bootstrap,
        [
            "benchmarks.passthrough",
            ceiling.topic_name("events"),
            ceiling.topic_name("valid_offers"),
        ],
        "valid_offers",
        count,
    )
    _prepare(settings, bootstrap, events)
    valid = _stream(settings, bootstrap, ["pipeline", "run", "valid-offers"], "valid_offers", count)
    return {
        "events": count,
        "offers": 100,
        "rules": sum(len(r) for r in workload.rules().values()),
        "pass-through events/s": passthrough,
        "valid offers events/s": valid,
        "ratio to pass-through": valid / passthrough,
        "goal ratio": 0.5,
    }


def ranker_decisions(settings: Settings, bootstrap: str, count: int = 30_000) -> dict[str, Any]:
    """Decisions/s of one ranker process, 20 candidate offers per event."""
    topics.create_topics(settings, bootstrap)
    produce(settings, bootstrap, settings.topic_name("offers"), workload.offers(100))
    produce(settings, bootstrap, settings.topic_name("valid_offers"), workload.valid_offers(count))
    rate = _stream(settings, bootstrap, ["pipeline", "run", "ranker"], "next_best_offers", count)
    return {
        "decisions": count,
        "candidates per decision": 20,
        "decisions/s": rate,
        "goal decisions/s": 5000.0,
    }


def _paced(
    settings: Settings, bootstrap: str, events: list[tuple[str, bytes]], rate: float
) -> None:
    """Produce `events` at `rate` per second (a load generator keeps to a schedule)."""
    producer = Producer(producer_config(settings, bootstrap))
    topic = settings.topic_name("events")
    started = time.perf_counter()
    for index, (key, value) in enumerate(events):
        due = started + index / rate
        while (ahead := due - time.perf_counter()) > 0:
            producer.poll(min(ahead, 0.01))
        producer.produce(topic, key=key.encode(), value=value)
        producer.poll(0)
    producer.flush(30)


def _latencies(settings: Settings, bootstrap: str, count: int, timeout: float) -> list[float]:
    """Milliseconds from each event's produce time (carried on as the record timestamp) to
    the moment its decision was read."""
    topic = settings.topic_name("next_best_offers")
    consumer = Consumer(
        {
            **settings.kafka_config(bootstrap),
            "group.id": "nbo-bench-latency",
            "fetch.wait.max.ms": 10,
        }
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    latencies: list[float] = []
    deadline = time.monotonic() + timeout
    try:
        while len(latencies) < count and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=1000, timeout=0.002):
                if message.error() is None:
                    latencies.append(time.time() * 1000 - message.timestamp()[1])
    finally:
        consumer.close()
    if len(latencies) < count:
        raise RuntimeError(f"{topic}: {len(latencies)} of {count} decisions within {timeout} s")
    return latencies


def loop_latency(
    settings: Settings, bootstrap: str, rate: float = 1000.0, seconds: int = 20
) -> dict[str, Any]:
    """Event-to-decision latency through both μ-products at a steady `rate` of events/s."""
    count = int(rate * seconds)
    warm_up = workload.events(200, seed=99)
    events = workload.events(count)
    topics.create_topics(settings, bootstrap)
    produce(settings, bootstrap, settings.topic_name("offers"), workload.offers(100))
    for topic, rules in workload.rules().items():
        produce(settings, bootstrap, settings.topic_name(topic), rules)
    produce(settings, bootstrap, settings.topic_name("customers"), workload.customers())
    fast = settings.model_copy(update={"commit_interval": 1.0})
    with (
        processes.running(fast, ["pipeline", "run", "valid-offers"], LOGS / "lat-vo.log"),
        processes.running(fast, ["pipeline", "run", "ranker"], LOGS / "lat-ranker.log"),
    ):
        produce(settings, bootstrap, settings.topic_name("events"), warm_up)
        _latencies(settings, bootstrap, len(warm_up), timeout=120)  # both apps joined and warm
        with ThreadPoolExecutor(1) as pool:
            measuring = pool.submit(_latencies, settings, bootstrap, len(warm_up) + count, 120)
            _paced(settings, bootstrap, events, rate)
            latencies = sorted(measuring.result()[len(warm_up) :])
    return {
        "events/s offered": rate,
        "decisions": len(latencies),
        "latency p50 ms": statistics.median(latencies),
        "latency p90 ms": latencies[int(len(latencies) * 0.90) - 1],
        "latency p99 ms": latencies[int(len(latencies) * 0.99) - 1],
        "goal p99 ms": 50.0,
    }


ALL = [
    ("file load", load_events),
    ("valid offers", valid_offers_vs_passthrough),
    ("ranker", ranker_decisions),
    ("full loop latency", loop_latency),
]
