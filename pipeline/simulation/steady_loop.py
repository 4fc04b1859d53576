"""A closed loop driven the way an outside team drives nbo: a steady event rate, answers late.

Unlike `nbo demo`, which waits for each batch's decisions before it answers them, this driver
produces journey events at a steady rate while the event time (`timestamp`) moves `gap` seconds
per event, shows each decision's first offer, and answers it minutes to hours later *in event
time*: an interaction is produced once the events' clock has passed it, so the three customer
topics interleave as they do in production. Halfway through, a new offer is loaded. It uses
plain confluent-kafka clients and the documented topics only.

The μ-products run under a `Supervisor`, as in production: one that exits is restarted at once.
With `kill_every`, a random one (each in turn, in a seeded order) is SIGKILLed every ~that many
seconds while events are produced, and the report says what the crashes cost: event→decision
latency overall and in the 30 s after each kill, decisions lost, duplicated or late, labels told
against labels learned, dead letters, and partitions that moved from one ranker to another.

It ends when every event has a decision, or when no decision has come for `idle_timeout`
seconds: then it reports how many events were never decided.

    python -m pipeline.simulation.steady_loop --events 30000 --rate 100
    python -m pipeline.simulation.steady_loop --rankers 2 --kill-every 20   # chaos (`make chaos`)
"""

from __future__ import annotations

import heapq
import json
import random
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from confluent_kafka import Producer

from pipeline.connectors import load as connectors
from pipeline.contracts import topics
from pipeline.contracts.schemas import Offer, group_name
from pipeline.contracts.topics import LOOP_OUTPUTS
from pipeline.errors import NboError
from pipeline.kafka import broker as broker_mod
from pipeline.kafka.clients import consume, producer_config, reader_from_start
from pipeline.kafka.processes import Supervisor
from pipeline.learner.topics import latest_snapshots
from pipeline.settings import Settings
from pipeline.simulation.channel import Channel
from pipeline.simulation.demo import SAMPLE
from pipeline.simulation.world import World

AFTER_KILL = 30.0  # seconds after a kill whose events' latencies are reported apart


@dataclass(frozen=True)
class LoopConfig:
    events: int = 30_000
    rate: float = 100.0  # events per second, wall clock
    gap: tuple[float, float] = (30.0, 60.0)  # event-time seconds between two events
    customers: int = 3_000
    seed: int = 17
    idle_timeout: float = 60.0  # no decision for this long after the last event: give up
    new_offer_at: float = 0.5  # share of the events after which a new offer is loaded
    rankers: int = 1
    kill_every: float | None = None  # seconds between SIGKILLs of a random μ-product
    late_after: float = 10.0  # a decision later than this after its event is late
    labels_timeout: float = 60.0  # how long the learner may take to learn the last labels
    window: float = 300.0  # seconds per window of the report's time series

    def apps(self) -> dict[str, list[str]]:
        """The supervised processes: Valid Offers, the rankers, the learner."""
        rankers = {f"ranker-{n}": ["pipeline", "run", "ranker"] for n in range(self.rankers)}
        return {
            "valid-offers": ["pipeline", "run", "valid-offers"],
            **rankers,
            "learner": ["pipeline", "run", "learner"],
        }


@dataclass(frozen=True)
class Latency:
    """Event→decision latencies in seconds: how many, p50, p99, max."""

    count: int
    p50: float | None
    p99: float | None
    max: float | None

    @classmethod
    def of(cls, seconds: list[float]) -> Latency:
        if not seconds:
            return cls(0, None, None, None)
        p50, p99 = np.percentile(seconds, [50, 99])
        return cls(len(seconds), round(float(p50), 3), round(float(p99), 3),
                   round(max(seconds), 3))  # fmt: skip


@dataclass(frozen=True)
class Kill:
    """One SIGKILL: whom, when (seconds into the loop), and what followed it."""

    victim: str
    at: float
    after: Latency  # of the events produced in the AFTER_KILL seconds that followed
    decided_by: dict[str, int]  # their decisions per ranker instance


@dataclass(frozen=True)
class Window:
    """One window of the loop's time series."""

    start: float
    end: float
    latency: Latency
    broker_cpu_share: float | None  # the embedded broker's CPU, in cores
    broker_rss_mb: float | None
    # each μ-product's CPU in the window, in cores, and its resident MB at its end
    apps: dict[str, tuple[float, float]] = field(default_factory=dict)


@dataclass
class LoopReport:
    events: int = 0
    decided: int = 0
    duplicates: int = 0
    late: int = 0
    interactions: int = 0
    labels_told: int = 0
    labels_learned: int | None = None
    dead_letters: int = 0
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)
    undecided: list[str] = field(default_factory=list)
    max_backlog: int = 0  # events produced and not yet decided, at worst
    seconds: float = 0.0
    latency: Latency = Latency(0, None, None, None)
    kills: list[Kill] = field(default_factory=list)
    partition_moves: list[str] = field(
        default_factory=list
    )  # a partition decided by another ranker
    crashes: list[str] = field(default_factory=list)  # exits nobody asked for
    # customers decided in one group, then in another (treatment, control/<baseline>)
    group_changes: list[str] = field(default_factory=list)
    customers_per_group: dict[str, int] = field(default_factory=dict)
    windows: list[Window] = field(default_factory=list)
    broker_cpu_seconds: float | None = None  # the embedded broker's own CPU time
    exit_codes: dict[str, int] = field(default_factory=dict)
    logs: str = ""

    def figures(self) -> dict[str, Any]:
        figures = asdict(self)
        figures["undecided"] = len(self.undecided)
        return figures


class _Decisions:
    """Reads valid_offers, next_best_offers and dead_letter from the start, without a group (and
    read committed: under exactly-once a decision counts once its transaction has)."""

    def __init__(self, settings: Settings, bootstrap: str) -> None:
        self._consumer, self._names = reader_from_start(
            settings, bootstrap, LOOP_OUTPUTS, "nbo-loop"
        )
        self._valid: dict[str, dict[str, Any]] = {}  # read, their decision not yet
        self._decided: dict[str, dict[str, Any]] = {}  # read, their valid offers not yet
        self.counts: Counter[str] = Counter()  # decisions per event id
        self.dead_reasons: Counter[str] = Counter()
        self.owners: dict[int, str] = {}  # next_best_offers partition → the ranker deciding it
        self.moves: list[str] = []  # each time a partition was decided by another ranker
        self.groups: dict[str, str] = {}  # each customer's group, as their first decision said
        self.group_changes: list[str] = []
        self.read_at = 0.0

    def read(
        self, timeout: float, at: float = 0.0
    ) -> tuple[list[tuple[dict[str, Any], dict[str, Any]]], list[dict[str, Any]]]:
        """New (valid offers, decision) pairs, each event's first decision once both are read
        (the two topics are read side by side, so either may come first); and every decision
        that is an event's first."""
        pairs, first = [], []
        self.read_at = at  # seconds into the loop, for the moves it records
        for message in self._consumer.consume(num_messages=5000, timeout=timeout):
            if message.error() is not None:
                continue
            topic = self._names[message.topic() or ""]
            value = json.loads(message.value() or b"null")
            if topic == "dead_letter":
                self.dead_reasons[str(value.get("reason", ""))[:120]] += 1
                continue
            event_id = value["event_id"]
            if topic == "next_best_offers":
                self._owner(message.partition() or 0, value.get("instance") or "")
                self._group(value)
                self.counts[event_id] += 1
                if self.counts[event_id] > 1:
                    continue
                first.append(value)
                self._decided[event_id] = value
            elif event_id not in self._valid and self.counts[event_id] <= 1:
                self._valid[event_id] = value
            if event_id in self._valid and event_id in self._decided:
                pairs.append((self._valid.pop(event_id), self._decided.pop(event_id)))
        return pairs, first

    def _owner(self, partition: int, instance: str) -> None:
        before = self.owners.get(partition)
        if before is not None and before != instance:
            self.moves.append(f"{partition}: {before} -> {instance} ({self.read_at:.1f} s)")
        self.owners[partition] = instance

    def _group(self, decision: dict[str, Any]) -> None:
        customer = decision["customer_id"]
        group = group_name(decision.get("group", "treatment"), decision.get("baseline"))
        before = self.groups.setdefault(customer, group)
        if before != group:
            self.group_changes.append(f"{customer}: {before} -> {group} ({self.read_at:.1f} s)")
            self.groups[customer] = group

    def forget_counts(self) -> None:
        """Start counting afresh (after the warm-up), keeping who decides which partition."""
        self.counts.clear()
        self.dead_reasons.clear()
        self.moves.clear()
        self._valid.clear()
        self._decided.clear()

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


class _Killer:
    """Picks when to SIGKILL which μ-product: every ~`every` seconds (±25%), each in turn in a
    seeded order, so every μ-product is killed once before any is killed twice."""

    def __init__(self, names: list[str], every: float | None, seed: int) -> None:
        self._names = names
        self._every = every
        self._rng = random.Random(seed)
        self._order: list[str] = []
        self._next = self._gap()

    def _gap(self) -> float:
        return float("inf") if self._every is None else self._every * self._rng.uniform(0.75, 1.25)

    def due(self, elapsed: float) -> str | None:
        if elapsed < self._next:
            return None
        self._next = elapsed + self._gap()
        if not self._order:
            self._order = self._rng.sample(self._names, len(self._names))
        return self._order.pop()


class _ProcessWatch:
    """One process's CPU and resident memory, sampled at each window's end (the embedded
    broker's, or a μ-product's: a new process of the same name after a restart)."""

    def __init__(self, pid: int | None) -> None:
        self._process = psutil.Process(pid) if pid is not None else None
        self._cpu = self.cpu_seconds()

    def follow(self, pid: int) -> None:
        """Go on with the process `pid` (a restart's), its CPU counted from now."""
        if self._process is None or self._process.pid != pid:
            self._process = psutil.Process(pid)
            self._cpu = self.cpu_seconds()

    def cpu_seconds(self) -> float:
        if self._process is None:
            return 0.0
        times = self._process.cpu_times()
        return float(times.user + times.system)

    def sample(self, seconds: float) -> tuple[float | None, float | None]:
        """CPU share since the last sample, over `seconds`, and resident MB now."""
        if self._process is None:
            return None, None
        try:
            cpu = self.cpu_seconds()
            rss = self._process.memory_info().rss / 1e6
        except psutil.NoSuchProcess:  # killed since the last sample: nothing to say of it
            return None, None
        used, self._cpu = cpu - self._cpu, cpu
        return round(used / max(seconds, 1e-9), 3), round(rss, 1)


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
    logs = Path(tempfile.mkdtemp(prefix="nbo-loop-logs-"))
    topics.create_topics(settings, bootstrap)
    for source, name in (("offers", "offers.csv"), ("rules", "rules.yaml")):
        connectors.load_file(settings, bootstrap, source, SAMPLE / name)
    offers = {
        o.offer_id: o.model_dump(mode="json")
        for _, o in connectors.parse_source("offers", SAMPLE / "offers.csv").records
        if isinstance(o, Offer)
    }
    world = World(customers=config.customers, seed=config.seed)
    producer = Producer({**producer_config(settings, bootstrap), "acks": "all"})
    for record in world.customer_records():
        producer.produce(settings.topic_name("customers"), json.dumps(record).encode(),
                         record["customer_id"].encode())  # fmt: skip
    producer.flush(30)
    broker = _ProcessWatch(broker_pid)
    cpu_before = broker.cpu_seconds()
    supervisor = Supervisor(settings, config.apps(), logs).start()
    loop = SteadyLoop(settings, config, world, offers, producer, supervisor, broker)
    loop.report.logs = str(logs)
    streams = [name for name in supervisor.processes if name != "learner"]
    try:
        try:
            loop.warm_up()
            loop.drive()
        finally:
            loop.close()
            loop.report.exit_codes = supervisor.stop(streams)  # each tells what it has
        loop.count_labels(bootstrap)  # with the learner still learning
    finally:
        loop.report.exit_codes |= supervisor.stop()
    if broker_pid is not None:
        loop.report.broker_cpu_seconds = round(broker.cpu_seconds() - cpu_before, 1)
    return loop.report


class SteadyLoop:
    """The driver: produces events and due answers, reads decisions, kills on schedule."""

    def __init__(
        self,
        settings: Settings,
        config: LoopConfig,
        world: World,
        offers: dict[str, dict[str, Any]],
        producer: Producer,
        supervisor: Supervisor,
        broker: _ProcessWatch,
    ) -> None:
        self._settings = settings
        self._config = config
        self._world = world
        self._offers = offers
        self._channel = Channel(world, offers, seed=config.seed + 1)  # sees `offers` grow
        self._producer = producer
        self._supervisor = supervisor
        self._broker = broker
        self._apps = {name: _ProcessWatch(p.pid) for name, p in supervisor.processes.items()}
        self._decisions = _Decisions(settings, settings.broker_address or "")
        self._answers = _Answers()
        self._killer = _Killer(list(config.apps()), config.kill_every, config.seed + 2)
        self._rng = random.Random(config.seed)
        self._clock = ""  # the events' clock: the latest event's timestamp
        self._produced: dict[str, float] = {}  # event id → seconds into the loop it was produced
        self._decided: list[tuple[float, float, str]] = []  # (produced at, latency, instance)
        self._kills: list[tuple[str, float]] = []
        self._started = time.monotonic()
        self._window_start = 0.0
        self.report = LoopReport()

    def _elapsed(self) -> float:
        return time.monotonic() - self._started

    def warm_up(self, batch: int = 20, within: float = 180.0) -> None:
        """Send batches of events until every μ-product has started and a batch is
        decided by every ranker (bounded), so that start-up is not counted as a crash's cost;
        the loop's clock starts after it."""
        settings, decisions = self._settings, self._decisions
        rankers = min(self._config.rankers, settings.topic_partitions)
        deadline = time.monotonic() + within
        while True:
            warm = self._world.events(batch, gap=self._config.gap[0])
            for event in warm:
                self._producer.produce(settings.topic_name("events"), json.dumps(event).encode(),
                                       event["customer_id"].encode())  # fmt: skip
            self._producer.flush(30)
            wanted, deciders = {event["event_id"] for event in warm}, set()
            sent = time.monotonic()
            while not wanted <= set(decisions.counts) and time.monotonic() - sent < 15.0:
                deciders |= {d["instance"] for d in decisions.read(timeout=0.1)[1]
                             if d["event_id"] in wanted}  # fmt: skip
            if wanted <= set(decisions.counts) and len(deciders) >= rankers:
                break
            if time.monotonic() > deadline:
                raise NboError(
                    f"steady loop: the μ-products did not all decide within {within:.0f} s of "
                    f"starting (logs: {self.report.logs})"
                )
            for crash in self._supervisor.check():
                self.report.crashes.append(f"{crash.name} exited with code {crash.code}")
        decisions.forget_counts()
        self._started = time.monotonic()

    def drive(self) -> None:
        config, report = self._config, self.report
        last_decision = 0.0
        while True:
            elapsed = self._elapsed()
            self._produce(min(config.events, int(elapsed * config.rate) + 1))
            if len(self._produced) < config.events:
                victim = self._killer.due(elapsed)
                if victim is not None:
                    self._supervisor.kill(victim)
                    self._kills.append((victim, elapsed))
            if self._read():
                last_decision = self._elapsed()
            for crash in self._supervisor.check():
                report.crashes.append(f"{crash.name} exited with code {crash.code}")
            report.events, report.decided = len(self._produced), len(self._decisions.counts)
            report.max_backlog = max(report.max_backlog, report.events - report.decided)
            if self._elapsed() - self._window_start >= config.window:
                self._close_window()
            if report.events == config.events:
                if report.decided == config.events:
                    break
                if self._elapsed() - last_decision > config.idle_timeout:
                    break  # stalled: report what is missing
        self._producer.flush(30)
        self._finish()

    def _produce(self, due: int) -> None:
        settings, config = self._settings, self._config
        for _ in range(due - len(self._produced)):
            (event,) = self._world.events(1, gap=self._rng.uniform(*config.gap))
            self._producer.produce(settings.topic_name("events"), json.dumps(event).encode(),
                                   event["customer_id"].encode())  # fmt: skip
            self._produced[event["event_id"]] = self._elapsed()
            self._clock = event["timestamp"]
            if len(self._produced) == int(config.events * config.new_offer_at):
                fresh = new_offer(self._offers)
                self._offers[fresh["offer_id"]] = fresh
                self._producer.produce(settings.topic_name("offers"), json.dumps(fresh).encode(),
                                       fresh["offer_id"].encode())  # fmt: skip
        for interaction in self._answers.due(self._clock):
            self._producer.produce(settings.topic_name("interactions"),
                                   json.dumps(interaction).encode(),
                                   interaction["customer_id"].encode())  # fmt: skip
            self.report.interactions += 1
        self._producer.poll(0)

    def _read(self) -> bool:
        """Read what was decided; whether anything was."""
        pairs, first = self._decisions.read(timeout=0.02, at=self._elapsed())
        now = self._elapsed()
        for decision in first:
            produced = self._produced.get(decision["event_id"])
            if produced is not None:
                self._decided.append((produced, now - produced, decision.get("instance") or ""))
        for valid, decision in pairs:
            for interaction in self._channel.respond(valid, decision).interactions:
                self._answers.add(interaction)
        return bool(first)

    def _latencies(self, start: float, end: float) -> list[float]:
        return [latency for at, latency, _ in self._decided if start <= at < end]

    def _close_window(self) -> None:
        end = self._elapsed()
        cpu, rss = self._broker.sample(end - self._window_start)
        apps = {}
        for name, watch in self._apps.items():
            watch.follow(self._supervisor.processes[name].pid)
            app_cpu, app_rss = watch.sample(end - self._window_start)
            if app_cpu is not None and app_rss is not None:
                apps[name] = (app_cpu, app_rss)
        latency = Latency.of(self._latencies(self._window_start, end))
        self.report.windows.append(Window(round(self._window_start, 1), round(end, 1), latency,
                                          cpu, rss, apps))  # fmt: skip
        self._window_start = end

    def _finish(self) -> None:
        report, decisions = self.report, self._decisions
        self._close_window()
        report.seconds = round(self._elapsed(), 1)
        report.duplicates = sum(n - 1 for n in decisions.counts.values())
        report.dead_letters = sum(decisions.dead_reasons.values())
        report.dead_letter_reasons = dict(decisions.dead_reasons.most_common(5))
        report.undecided = [e for e in self._produced if e not in decisions.counts]
        latencies = [latency for _, latency, _ in self._decided]
        report.latency = Latency.of(latencies)
        report.late = sum(latency > self._config.late_after for latency in latencies)
        report.partition_moves = decisions.moves
        report.group_changes = decisions.group_changes
        report.customers_per_group = dict(Counter(decisions.groups.values()))
        for victim, at in self._kills:
            window = [d for d in self._decided if at <= d[0] < at + AFTER_KILL]
            report.kills.append(
                Kill(
                    victim,
                    round(at, 1),
                    Latency.of([latency for _, latency, _ in window]),
                    decided_by=dict(Counter(instance for _, _, instance in window)),
                )
            )

    def count_labels(self, bootstrap: str) -> None:
        """Labels told (distinct, on `feedback`) against labels the learner's latest champion
        has learned, once it has caught up or `labels_timeout` has passed."""
        settings = self._settings
        told = {
            (r.json()["decision_id"], r.json()["offer_id"])
            for r in consume(settings, bootstrap, settings.topic_name("feedback"))
        }
        self.report.labels_told = len(told)
        deadline = time.monotonic() + self._config.labels_timeout
        while True:  # bounded: until the learner has caught up, or the deadline
            champion = latest_snapshots(settings, bootstrap).get("champion")
            learned = champion.labels_learned if champion is not None else 0
            if learned >= len(told) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.report.labels_learned = learned

    def close(self) -> None:
        self._decisions.close()


def run_on_configured_broker(settings: Settings, config: LoopConfig) -> LoopReport:
    """The loop on `NBO_BROKER_ADDRESS` (or a running `nbo broker`), else on an embedded broker
    of its own, whose CPU and memory the report then follows."""
    address = broker_mod.configured_address(settings)
    if address is not None:
        return run_loop(settings.model_copy(update={"broker_address": address}), config)
    with broker_mod.embedded_broker(settings) as embedded:
        on_it = settings.model_copy(update={"broker_address": embedded.address})
        return run_loop(on_it, config, embedded.pid)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=LoopConfig.events)
    parser.add_argument("--rate", type=float, default=LoopConfig.rate)
    parser.add_argument("--customers", type=int, default=LoopConfig.customers)
    parser.add_argument("--seed", type=int, default=LoopConfig.seed)
    parser.add_argument("--rankers", type=int, default=LoopConfig.rankers)
    parser.add_argument("--kill-every", type=float, default=None, help="seconds; unset: none")
    parser.add_argument("--window", type=float, default=LoopConfig.window, help="seconds")
    args = parser.parse_args()
    config = LoopConfig(events=args.events, rate=args.rate, customers=args.customers,
                        seed=args.seed, rankers=args.rankers, kill_every=args.kill_every,
                        window=args.window)  # fmt: skip
    report = run_on_configured_broker(Settings(), config)
    print(json.dumps(report.figures(), indent=2))


if __name__ == "__main__":
    main()
