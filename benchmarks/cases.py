"""The benchmark cases. Each takes settings on a fresh topic prefix and returns its figures."""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from benchmarks import workload
from pipeline import connectors, processes, topics
from pipeline.kafka_io import consume, produce
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


ALL = [("file load", load_events), ("valid offers", valid_offers_vs_passthrough)]
