"""A closed loop driven the way an outside team drives nbo: a steady event rate, answers late.

Unlike `nbo demo`, which waits for each batch's decisions before it answers them, this driver
produces journey events at a steady rate while the event time (`timestamp`) moves `gap` seconds
per event, shows each decision's first offer, and answers it minutes to hours later *in event
time*: an interaction is produced once the events' clock has passed it, so the three customer
topics interleave as they do in production. Halfway through, a new offer is loaded. It uses
plain confluent-kafka clients and the documented topics only.

It ends when every event has a decision, or when no decision has come for `idle_timeout`
seconds: then it reports how many events were never decided.

    python -m pipeline.tools.steady_loop --events 30000 --rate 100
"""

from __future__ import annotations

import heapq
import json
import random
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from confluent_kafka import Producer

from pipeline.connectors import load as connectors
from pipeline.contracts import topics
from pipeline.contracts.schemas import Offer
from pipeline.contracts.topics import LOOP_OUTPUTS
from pipeline.errors import NboError
from pipeline.kafka import broker as broker_mod
from pipeline.kafka import processes
from pipeline.kafka.clients import producer_config, reader_from_start
from pipeline.settings import Settings
from pipeline.tools.demo import APPS, SAMPLE
from pipeline.tools.simulation import Channel, World


@dataclass(frozen=True)
class LoopConfig:
    events: int = 30_000
    rate: float = 100.0  # events per second, wall clock
    gap: tuple[float, float] = (30.0, 60.0)  # event-time seconds between two events
    customers: int = 3_000
    seed: int = 17
    idle_timeout: float = 60.0  # no decision for this long after the last event: give up
    new_offer_at: float = 0.5  # share of the events after which a new offer is loaded


@dataclass
class LoopReport:
    events: int = 0
    decided: int = 0
    duplicates: int = 0
    interactions: int = 0
    dead_letters: int = 0
    undecided: list[str] = field(default_factory=list)
    max_backlog: int = 0  # events produced and not yet decided, at worst
    seconds: float = 0.0
    broker_cpu_seconds: float | None = None  # the embedded broker's own CPU time
    exit_codes: dict[str, int] = field(default_factory=dict)
    logs: str = ""

    def figures(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "decided": self.decided,
            "undecided": len(self.undecided),
            "duplicate decisions": self.duplicates,
            "interactions": self.interactions,
            "dead letters": self.dead_letters,
            "max backlog": self.max_backlog,
            "seconds": round(self.seconds, 1),
            "broker CPU seconds": self.broker_cpu_seconds,
            "process exit codes": self.exit_codes,
            "process logs": self.logs,
        }


class _Decisions:
    """Reads valid_offers, next_best_offers and dead_letter from the start, without a group."""

    def __init__(self, settings: Settings, bootstrap: str) -> None:
        self._consumer, self._names = reader_from_start(
            settings, bootstrap, LOOP_OUTPUTS, "nbo-loop"
        )
        self._valid: dict[str, dict[str, Any]] = {}  # read, their decision not yet
        self._decided: dict[str, dict[str, Any]] = {}  # read, their valid offers not yet
        self.counts: Counter[str] = Counter()  # decisions per event id
        self.dead_letters = 0

    def read(self, timeout: float) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """New (valid offers, decision) pairs: each event's first decision, once both are read.

        The two topics are read side by side, so either may come first."""
        pairs = []
        for message in self._consumer.consume(num_messages=5000, timeout=timeout):
            if message.error() is not None:
                continue
            topic = self._names[message.topic() or ""]
            if topic == "dead_letter":
                self.dead_letters += 1
                continue
            value = json.loads(message.value() or b"null")
            event_id = value["event_id"]
            if topic == "next_best_offers":
                self.counts[event_id] += 1
                if self.counts[event_id] > 1:
                    continue
                self._decided[event_id] = value
            elif event_id not in self._valid and self.counts[event_id] <= 1:
                self._valid[event_id] = value
            if event_id in self._valid and event_id in self._decided:
                pairs.append((self._valid.pop(event_id), self._decided.pop(event_id)))
        return pairs

    def close(self) -> None:
        self._consumer.close()


class _Answers:
    """Interactions waiting for the events' clock to pass their timestamp."""

    def __init__(self) -> None:
        self._heap: list[tuple[str, int, dict[str, Any]]] = []
        self._count = 0

    def add(self, interaction: dict[str, Any]) -> None:
        self._count += 1
        heapq.heappush(self._heap, (interaction["timestamp"], self._count, interaction))

    def due(self, clock: str) -> list[dict[str, Any]]:
        """ISO timestamps in one time zone compare as strings."""
        out = []
        while self._heap and self._heap[0][0] <= clock:
            out.append(heapq.heappop(self._heap)[2])
        return out


def new_offer(offers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A new offer from the DWH mid-stream: a copy of the first card offer, worth more."""
    base = next(o for o in offers.values() if o["category"] == "card")
    fresh = Offer.model_validate({**base, "offer_id": "card-new", "value": base["value"] * 1.5})
    return fresh.model_dump(mode="json")


def run_loop(settings: Settings, config: LoopConfig, broker_pid: int | None = None) -> LoopReport:
    """Run the loop on `settings.broker_address`; every process started here is stopped."""
    bootstrap = settings.broker_address
    if bootstrap is None:
        raise NboError("steady loop: no broker address")
    report = LoopReport()
    logs = Path(tempfile.mkdtemp(prefix="nbo-loop-logs-"))
    report.logs = str(logs)
    topics.create_topics(settings, bootstrap)
    for source, name in (("offers", "offers.csv"), ("rules", "rules.yaml")):
        connectors.load_file(settings, bootstrap, source, SAMPLE / name)
    offers = {
        o.offer_id: o.model_dump(mode="json")
        for _, o in connectors.parse_source("offers", SAMPLE / "offers.csv").records
        if isinstance(o, Offer)
    }
    world = World(customers=config.customers, seed=config.seed)
    channel = Channel(world, offers, seed=config.seed + 1)  # sees `offers` grow
    producer = Producer({**producer_config(settings, bootstrap), "acks": "all"})
    for record in world.customer_records():
        producer.produce(settings.topic_name("customers"), json.dumps(record).encode(),
                         record["customer_id"].encode())  # fmt: skip
    producer.flush(30)
    cpu_before = _cpu_seconds(broker_pid)
    running = {
        name: processes.spawn(settings, args, logs / f"{name}.log") for name, args in APPS.items()
    }
    decisions = _Decisions(settings, bootstrap)
    try:
        _drive(settings, config, world, channel, offers, producer, decisions, running, report)
    finally:
        decisions.close()
        report.exit_codes = {name: processes.stop(p) for name, p in running.items()}
    if broker_pid is not None:
        report.broker_cpu_seconds = round(_cpu_seconds(broker_pid) - cpu_before, 1)
    return report


def _drive(
    settings: Settings,
    config: LoopConfig,
    world: World,
    channel: Channel,
    offers: dict[str, dict[str, Any]],
    producer: Producer,
    decisions: _Decisions,
    running: dict[str, Any],
    report: LoopReport,
) -> None:
    rng = random.Random(config.seed)
    events_topic, interactions_topic = (
        settings.topic_name("events"),
        settings.topic_name("interactions"),
    )
    answers = _Answers()
    clock = ""  # the events' clock: the latest event's timestamp
    produced: list[str] = []
    started = time.monotonic()
    last_decision = started
    while True:
        now = time.monotonic()
        due = min(config.events, int((now - started) * config.rate) + 1)
        for _ in range(due - len(produced)):
            (event,) = world.events(1, gap=rng.uniform(*config.gap))
            producer.produce(events_topic, json.dumps(event).encode(),
                             event["customer_id"].encode())  # fmt: skip
            produced.append(event["event_id"])
            clock = event["timestamp"]
            if len(produced) == int(config.events * config.new_offer_at):
                fresh = new_offer(offers)
                offers[fresh["offer_id"]] = fresh
                producer.produce(settings.topic_name("offers"), json.dumps(fresh).encode(),
                                 fresh["offer_id"].encode())  # fmt: skip
            for interaction in answers.due(clock):
                producer.produce(interactions_topic, json.dumps(interaction).encode(),
                                 interaction["customer_id"].encode())  # fmt: skip
                report.interactions += 1
        producer.poll(0)
        for valid, decision in decisions.read(timeout=0.02):
            last_decision = time.monotonic()
            for interaction in channel.respond(valid, decision).interactions:
                answers.add(interaction)
        report.events = len(produced)
        report.decided = len(decisions.counts)
        report.max_backlog = max(report.max_backlog, report.events - report.decided)
        for name, process in running.items():
            if process.poll() is not None:
                raise NboError(f"steady loop: {name} exited with code {process.returncode}")
        if report.events == config.events:
            if report.decided == config.events:
                break
            if time.monotonic() - max(last_decision, started) > config.idle_timeout:
                break  # stalled: report what is missing
    producer.flush(30)
    report.seconds = time.monotonic() - started
    report.duplicates = sum(n - 1 for n in decisions.counts.values())
    report.dead_letters = decisions.dead_letters
    report.undecided = [e for e in produced if e not in decisions.counts]


def _cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=LoopConfig.events)
    parser.add_argument("--rate", type=float, default=LoopConfig.rate)
    parser.add_argument("--customers", type=int, default=LoopConfig.customers)
    parser.add_argument("--seed", type=int, default=LoopConfig.seed)
    args = parser.parse_args()
    config = LoopConfig(events=args.events, rate=args.rate, customers=args.customers,
                        seed=args.seed)  # fmt: skip
    settings = Settings()
    address = broker_mod.configured_address(settings)
    if address is not None:
        report = run_loop(settings.model_copy(update={"broker_address": address}), config)
    else:
        with broker_mod.EmbeddedBroker(settings.broker_start_timeout) as embedded:
            on_it = settings.model_copy(update={"broker_address": embedded.address})
            report = run_loop(on_it, config, embedded.pid)
    print(json.dumps(report.figures(), indent=2))


if __name__ == "__main__":
    main()
