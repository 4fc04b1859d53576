"""Every Prometheus metric a μ-product process serves, in one table.

A process runs one μ-product, so the metrics live in one registry per process (`REGISTRY`), and
the code that does the work counts it where it happens: records read as they are parsed,
records emitted as they go to their topic, dead letters as they are sent, lag at each look of
the progress watch, decisions as they are made, labels as they are learned. What is read when
scraped (the state store's size, the process's CPU and memory) is read then. Labels stay few:
μ-product, topic, partition, phase, policy, registered model version, reason class, never a
customer or an offer.

The names below are what `docs/operations.md`, the dashboard and the alert rules
(`docs/monitoring/`) read; `process_*` are the client library's own (CPU seconds, resident
memory, start time: a restart shows as a new start time).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from pipeline.contracts.schemas import DeadLetterKind

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)

# Streams, every μ-product
RECORDS_IN = Counter(
    "nbo_records_in", "records read from a source topic (bad ones too)",
    ["stage", "topic"], registry=REGISTRY,
)  # fmt: skip
RECORDS_OUT = Counter(
    "nbo_records_out", "records emitted to a sink topic",
    ["stage", "topic"], registry=REGISTRY,
)  # fmt: skip
DEAD_LETTERS = Counter(
    "nbo_dead_letters", "records refused to the dead-letter topic, by source and reason class",
    ["stage", "topic", "reason"], registry=REGISTRY,
)  # fmt: skip
CONSUMER_LAG = Gauge(
    "nbo_consumer_lag", "records waiting on a source partition, at the progress watch's last look",
    ["stage", "topic", "partition"], registry=REGISTRY,
)  # fmt: skip
OLDEST_WAITING = Gauge(
    "nbo_oldest_waiting_seconds", "age of the first record waiting on a source partition (0: none)",
    ["stage", "topic", "partition"], registry=REGISTRY,
)  # fmt: skip
STILL = Gauge(
    "nbo_waiting_without_progress_seconds",
    "how long records have waited on a partition whose committed offset has not moved",
    ["stage", "topic", "partition"], registry=REGISTRY,
)  # fmt: skip
PROGRESS_LOOK = Gauge(
    "nbo_progress_look_timestamp_seconds", "when the progress watch last read the group's offsets",
    ["stage"], registry=REGISTRY,
)  # fmt: skip
STALL_TIMEOUT = Gauge(
    "nbo_stall_timeout_seconds", "NBO_STALL_TIMEOUT: how long records may wait without progress",
    ["stage"], registry=REGISTRY,
)  # fmt: skip
STALLED = Gauge(
    "nbo_stalled", "1 once the μ-product stalled: it then stops, and a supervisor restarts it",
    ["stage"], registry=REGISTRY,
)  # fmt: skip

# The ranker
DECISIONS = Counter(
    "nbo_decisions",
    "decisions emitted, by the first offer's phase ('none': nothing shown), exploration policy "
    "and the champion's registered version",
    ["phase", "policy", "model_version"], registry=REGISTRY,
)  # fmt: skip
# From the event's time on Kafka (carried on by Valid Offers) to its decision leaving the ranker
DECISION_LATENCY = Histogram(
    "nbo_decision_latency_seconds", "from the journey event's time on Kafka to its decision",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
    registry=REGISTRY,
)  # fmt: skip
LABELS_TOLD = Counter(
    "nbo_labels_told", "labels the ranker told on feedback, by outcome",
    ["outcome"], registry=REGISTRY,
)  # fmt: skip
CHAMPION_PUBLISHED = Gauge(
    "nbo_champion_published_timestamp_seconds",
    "when the learner published the champion this ranker scores with (0: none yet)",
    registry=REGISTRY,
)  # fmt: skip
CHAMPION_LABELS = Gauge(
    "nbo_champion_labels_learned", "labels the champion this ranker scores with has learned",
    registry=REGISTRY,
)  # fmt: skip

# The learner
LABELS_LEARNED = Counter(
    "nbo_labels_learned", "labels the learner learned", registry=REGISTRY,
)  # fmt: skip
MODELS_PUBLISHED = Counter(
    "nbo_models_published", "champion snapshots the learner published", registry=REGISTRY,
)  # fmt: skip


class StateStoreSize(Collector):
    """`nbo_state_store_bytes`: the size on disk of a μ-product's state directory, read when
    scraped (RocksDB's files: a few per store)."""

    def __init__(self, stage: str, directory: Path) -> None:
        self._stage, self._directory = stage, directory

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "nbo_state_store_bytes", "size on disk of the state stores", labels=["stage"]
        )
        family.add_metric([self._stage], float(_size_of(self._directory)))
        yield family


def _size_of(directory: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(directory):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except FileNotFoundError:  # RocksDB removed it meanwhile (a compaction)
                continue
    return total


def expect_dead_letters(stage: str, topics: Iterable[str]) -> None:
    """Start `stage`'s dead-letter counts of records from `topics` (real names) at 0: a series
    that first appears at 1 shows no rate, and its first dead letter would raise no alert."""
    for topic in topics:
        for kind in DeadLetterKind:
            DEAD_LETTERS.labels(stage, topic, kind)
