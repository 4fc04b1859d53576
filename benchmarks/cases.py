"""The benchmark cases. Each runs on its own fresh embedded broker and returns its figures.

A streaming case runs its app(s) as separate processes, as in production, in two phases:

1. throughput: a backlog of records is produced before the app starts; the figure is the rate at
   which outputs arrive, after the first 10% (process start and group join are not counted);
2. latency: the app, still running, is fed a steady 1,000 records/s; the figure is the time
   from each record's produce time (carried on as the output's timestamp) to the moment its
   output is read.

Then the peak resident memory of each app process (Linux `VmHWM`) is read before it stops.
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from benchmarks import workload
from local_kafka.cluster import free_port
from pipeline.connectors import load as connectors
from pipeline.contracts import topics
from pipeline.kafka import processes
from pipeline.kafka.clients import consume, produce, producer_config
from pipeline.kafka.timing import timing_at
from pipeline.settings import Settings

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"
LOGS = Path(tempfile.mkdtemp(prefix="nbo-bench-logs-"))
WARM_UP = 0.1
BACKLOG = 30_000
STEADY_RATE = 1_000.0
STEADY_SECONDS = 15
WAIT = 240.0  # seconds any phase may take before the case fails, naming the process log

Records = list[tuple[str, bytes]]


@dataclass(frozen=True)
class Stream:
    """One streaming case: what to prepare, which apps to run, where records go in and out."""

    prepare: Callable[[Settings, str], None]
    apps: dict[str, list[str]]  # process name -> `python -m` arguments
    source: str  # logical topic the backlog and the steady records are produced to
    sink: str
    records: Callable[[int, int], Records]  # (count, seed) -> records
    settings: Mapping[str, Any] = field(default_factory=dict)  # what the case sets otherwise
    broker: str | None = None  # the one broker kind the case is for, if only one
    scraped: bool = False  # its one app serves metrics, scraped every second while it runs


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the live processes `pids` have used so far."""
    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


def run_stream(
    case: Stream, settings: Settings, bootstrap: str, broker_pids: list[int] | None = None
) -> dict[str, Any]:
    """Run `case`; `broker_pids` are the broker's processes, whose CPU time is measured too."""
    broker_pids = broker_pids or []
    case.prepare(settings, bootstrap)
    produce(settings, bootstrap, settings.topic_name(case.source), case.records(BACKLOG, 11))
    sink = settings.topic_name(case.sink)
    steady = case.records(int(STEADY_RATE * STEADY_SECONDS), 12)
    scraper = Scraper(settings) if case.scraped else None
    if scraper is not None:
        assert len(case.apps) == 1, "one metrics port per case: its one app's"
        settings = scraper.settings
    with running_apps(settings, case.apps) as apps, scraper or nullcontext():
        app_pids = [process.pid for process in apps.values()]
        broker_cpu, apps_cpu = cpu_seconds(broker_pids), cpu_seconds(app_pids)
        with Reader(settings, bootstrap, sink, apps) as reader:
            rate = reader.output_rate(BACKLOG)
        with (
            Reader(settings, bootstrap, sink, apps, at_end=True) as reader,
            ThreadPoolExecutor(1) as pool,
        ):
            reader.wait_until_fetching()
            measuring = pool.submit(reader.latencies, len(steady))
            paced(settings, bootstrap, settings.topic_name(case.source), steady, STEADY_RATE)
            latencies = sorted(measuring.result())
        peaks = {
            name: processes.resident_mb(process.pid, peak=True) for name, process in apps.items()
        }
        thousands = (BACKLOG + len(steady)) / 1000
        broker_cpu = (cpu_seconds(broker_pids) - broker_cpu) / thousands
        apps_cpu = (cpu_seconds(app_pids) - apps_cpu) / thousands
    return {
        "broker CPU s per 1,000 events": broker_cpu,
        "apps CPU s per 1,000 events": apps_cpu,
        "events/s": rate,
        "latency p50 ms": statistics.median(latencies),
        "latency p99 ms": latencies[int(len(latencies) * 0.99) - 1],
        "peak memory MB": sum(peaks.values()),
        "peak memory MB per process": peaks,
        "backlog": BACKLOG,
        "steady events/s": STEADY_RATE,
        "steady events": len(steady),
        **({"scrapes": scraper.scrapes} if scraper is not None else {}),
    }


class Scraper:
    """Scrapes an app's metrics every second, as a Prometheus would (every 15 s by default),
    for as long as the block runs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings.model_copy(update={"metrics_port": free_port()})
        self._url = f"http://127.0.0.1:{self.settings.metrics_port}/metrics"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-scraper", daemon=True)
        self.scrapes = 0

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            try:
                with urllib.request.urlopen(self._url, timeout=5) as answer:
                    answer.read()
                self.scrapes += 1
            except OSError:  # not serving yet (the app is starting)
                continue


@contextmanager
def running_apps(
    settings: Settings, apps: dict[str, list[str]]
) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    with ExitStack() as stack:
        yield {
            name: stack.enter_context(
                processes.running(settings, args, LOGS / f"{settings.topic_prefix}-{name}.log")
            )
            for name, args in apps.items()
        }


class Reader:
    """Reads a sink topic from its start, or from its current end; fails fast, with the app's
    log, when an app dies or the records do not come within `WAIT` seconds."""

    def __init__(
        self,
        settings: Settings,
        bootstrap: str,
        topic: str,
        apps: dict[str, subprocess.Popen[bytes]],
        at_end: bool = False,
    ) -> None:
        self._topic, self._apps = topic, apps
        self._settings = settings
        self._consumer = Consumer(
            {
                **settings.kafka_config(bootstrap),
                "group.id": "nbo-bench-reader",
                "fetch.wait.max.ms": timing_at(settings, bootstrap).fetch_wait_ms,
                "enable.partition.eof": True,
            }
        )
        partitions = self._consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self._consumer.assign(
            [
                TopicPartition(topic, p, self._end(p) if at_end else OFFSET_BEGINNING)
                for p in partitions
            ]
        )

    def wait_until_fetching(self) -> None:
        """Return once every partition has been fetched up to its end: a consumer's first
        fetch can take seconds, which would otherwise count as the first records' latency."""
        waiting = {tp.partition for tp in self._consumer.assignment()}
        deadline = time.monotonic() + WAIT
        while waiting:
            self._check(deadline, f"partitions {sorted(waiting)} not fetched yet")
            for message in self._consumer.consume(num_messages=1000, timeout=0.05):
                error = message.error()
                if error is not None and error.code() == KafkaError._PARTITION_EOF:
                    waiting.discard(message.partition())

    def _end(self, partition: int) -> int:
        _low, high = self._consumer.get_watermark_offsets(
            TopicPartition(self._topic, partition), timeout=10
        )
        return int(high)

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._consumer.close()

    def _records(self, count: int) -> Iterator[Any]:
        """Yield `count` records, each as soon as it is read."""
        seen = 0
        deadline = time.monotonic() + WAIT
        while seen < count:
            self._check(deadline, f"{seen} of {count} outputs")
            # `poll` returns with the first record; `consume` with a timeout would wait for
            # its whole batch or the timeout, and that wait would count as latency
            first = self._consumer.poll(0.05)
            if first is None:
                continue
            for message in [first, *self._consumer.consume(num_messages=10_000, timeout=0)]:
                if message.error() is None:
                    seen += 1
                    yield message

    def _check(self, deadline: float, progress: str) -> None:
        dead = [name for name, process in self._apps.items() if process.poll() is not None]
        if time.monotonic() < deadline and not dead:
            return
        name = dead[0] if dead else next(iter(self._apps))
        log = LOGS / f"{self._settings.topic_prefix}-{name}.log"
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise RuntimeError(f"{self._topic}: {progress}; {name} log:\n{tail}")

    def output_rate(self, count: int) -> float:
        """Records/s between the warm-up mark and the `count`th record."""
        warm_mark = max(1, int(count * WARM_UP))
        warm_at = 0.0
        for index, _ in enumerate(self._records(count), start=1):
            if index == warm_mark:
                warm_at = time.perf_counter()
        return (count - warm_mark) / (time.perf_counter() - warm_at)

    def latencies(self, count: int) -> list[float]:
        """Milliseconds from each record's timestamp to the moment it was read."""
        return [time.time() * 1000 - message.timestamp()[1] for message in self._records(count)]


def paced(settings: Settings, bootstrap: str, topic: str, records: Records, rate: float) -> None:
    """Produce `records` at `rate` per second (a load generator keeps to a schedule)."""
    producer = Producer(producer_config(settings, bootstrap))
    producer.list_topics(topic, timeout=10)  # else the first second waits for metadata
    started = time.perf_counter()
    for index, (key, value) in enumerate(records):
        ahead = started + index / rate - time.perf_counter()
        if ahead > 0:
            # Sleep, not poll: librdkafka's poll takes whole milliseconds, so polling the
            # sub-millisecond waits between records spun a core the broker and apps needed.
            time.sleep(ahead)
        producer.produce(topic, key=key.encode(), value=value)
        producer.poll(0)
    producer.flush(30)


def _topics_only(settings: Settings, bootstrap: str) -> None:
    topics.create_topics(settings, bootstrap)


def catalogue(settings: Settings, bootstrap: str) -> None:
    """Topics, 100 offers, 20 rules and the sample customers."""
    topics.create_topics(settings, bootstrap)
    produce(settings, bootstrap, settings.topic_name("offers"), workload.offers(100))
    for topic, rules in workload.rules().items():
        produce(settings, bootstrap, settings.topic_name(topic), rules)
    produce(settings, bootstrap, settings.topic_name("customers"), workload.customers())


def _valid_offers(count: int, seed: int) -> Records:
    return workload.valid_offers(count, seed=seed)


PASS_THROUGH = Stream(
    prepare=_topics_only,
    apps={"pass-through": ["benchmarks.passthrough", "events", "valid_offers"]},
    source="events",
    sink="valid_offers",
    records=workload.events,
)
VALID_OFFERS = Stream(
    prepare=catalogue,
    apps={"valid-offers": ["pipeline", "run", "valid-offers"]},
    source="events",
    sink="valid_offers",
    records=workload.events,
)
RANKER = Stream(
    prepare=catalogue,
    apps={"ranker": ["pipeline", "run", "ranker"]},
    source="valid_offers",
    sink="next_best_offers",
    records=_valid_offers,
)
FULL_LOOP = Stream(
    prepare=catalogue,
    apps={
        "valid-offers": ["pipeline", "run", "valid-offers"],
        "ranker": ["pipeline", "run", "ranker"],
    },
    source="events",
    sink="next_best_offers",
    records=workload.events,
)
# References: what the same broker and Quix give with no nbo work in the same shape
VALID_OFFERS_SHAPE = Stream(
    prepare=_topics_only,
    apps={
        "reference": [
            "benchmarks.passthrough",
            "customers,events,interactions",
            "valid_offers",
            "--stateful",
        ]
    },
    source="events",
    sink="valid_offers",
    records=workload.events,
)
TWO_HOPS = Stream(
    prepare=_topics_only,
    apps={
        "hop-1": ["benchmarks.passthrough", "events", "valid_offers"],
        "hop-2": ["benchmarks.passthrough", "valid_offers", "next_best_offers"],
    },
    source="events",
    sink="next_best_offers",
    records=workload.events,
)
# The embedded broker's CPU per loop event before its fetch wait was chosen on measurement
# (10 ms then, 100 now): the goal is half of it, measured in the same run.
LOOP_BEFORE = "full loop, before: 10 ms fetch wait"
FULL_LOOP_BEFORE = replace(FULL_LOOP, settings={"fetch_wait_max_ms": 10}, broker="embedded")
# The ranker with the smaller feature set, where the CRM's fields say nothing
RANKER_DEFAULT_FEATURES = "ranker, default features"
# The same μ-products serving their metrics, scraped every second: the cost of serving them
VALID_OFFERS_SCRAPED = "valid offers, metrics scraped"
RANKER_SCRAPED = "ranker, metrics scraped"
STREAMS = {
    "pass-through": PASS_THROUGH,
    "valid offers shape, no work": VALID_OFFERS_SHAPE,
    "valid offers": VALID_OFFERS,
    VALID_OFFERS_SCRAPED: replace(VALID_OFFERS, scraped=True),
    "ranker": RANKER,
    RANKER_SCRAPED: replace(RANKER, scraped=True),
    RANKER_DEFAULT_FEATURES: replace(RANKER, settings={"feature_set": "default"}),
    "two pass-through hops": TWO_HOPS,
    "full loop": FULL_LOOP,
    LOOP_BEFORE: FULL_LOOP_BEFORE,
}


def file_load(settings: Settings, bootstrap: str, copies: int = 50) -> dict[str, Any]:
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
