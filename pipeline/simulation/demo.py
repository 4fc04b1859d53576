"""`nbo demo`: the whole closed loop on one machine, as it would run in production.

Starts (or uses) a broker, creates the topics, loads the sample offers and rules, puts the
simulated customers on `customers`, and runs Valid Offers and the ranker as their own
processes. Then, batch after batch: journey events go on `events`, the decisions come back on
`next_best_offers`, the simulated channel shows each first offer and answers on
`interactions`, the ranker tells their labels on `feedback`, and the learner learns from them
and publishes the model every ranker decides with, while the loop goes on.

It stops after a number of events or seconds, stops every process it started and reports.
"""

from __future__ import annotations

import json
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.connectors import load as connectors
from pipeline.contracts import topics
from pipeline.contracts.schemas import ModelRole, Offer, group_name
from pipeline.contracts.topics import LOOP_OUTPUTS
from pipeline.errors import NboError
from pipeline.impact.reading import read_impact
from pipeline.impact.report import Estimate, ImpactReport, Lift, RunningMean
from pipeline.kafka import broker as broker_mod
from pipeline.kafka import processes
from pipeline.kafka.clients import produce, reader_from_start
from pipeline.kafka.progress import stage_probes
from pipeline.learner.topics import latest_snapshots
from pipeline.settings import Settings
from pipeline.simulation.channel import Channel, LaunchFigures, Scoreboard, WindowFigures
from pipeline.simulation.worlds import DEFAULT_WORLD, SimulatedWorld, make_world

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"
APPS = {
    "valid-offers": ["pipeline", "run", "valid-offers"],
    "ranker": ["pipeline", "run", "ranker"],
    "learner": ["pipeline", "run", "learner"],
    "gateway": ["pipeline", "run", "gateway"],
}
FIRST_BATCH_TIMEOUT = 120.0  # includes both apps starting and joining their groups
BATCH_TIMEOUT = 60.0


@dataclass(frozen=True)
class DemoConfig:
    events: int | None = None  # stop after this many events, or
    seconds: float = 120.0  # after this long (whichever comes first)
    batch: int = 250
    customers: int = 2000
    seed: int = 7
    # load the world's new offer after this many events (None: never)
    launch_at: int | None = 10_000
    world: str = DEFAULT_WORLD  # see pipeline.simulation.worlds


@dataclass
class DemoReport:
    events: int = 0
    decisions: int = 0
    interactions: int = 0
    dead_letters: int = 0
    first_model_version: str = ""
    model_version: str = ""
    seconds: float = 0.0
    scoreboard: Scoreboard = field(default_factory=Scoreboard)
    exit_codes: dict[str, int] = field(default_factory=dict)
    memory_mb: dict[str, float] = field(default_factory=dict)  # resident memory per process
    lag: dict[str, int] = field(default_factory=dict)  # records waiting, per μ-product
    logs: str = ""
    page: str = ""  # the bank's page on the gateway, with the demo's web key in its fragment
    # per group (treatment, control/<baseline>): the expected value per decision of what was
    # shown, as the simulation knows it (its true P(accept) × the offer's value now), and the
    # impact report read from the topics at the end, which only sees the answers
    true_value: dict[str, RunningMean] = field(default_factory=dict)
    impact: ImpactReport = field(default_factory=ImpactReport)

    def figures(self) -> DemoFigures:
        board = self.scoreboard
        return DemoFigures(
            events=self.events,
            decisions=self.decisions,
            shown=board.shown,
            interactions=self.interactions,
            accepted=board.accepted,
            acceptance=board.accepted / board.shown if board.shown else 0.0,
            recent=board.recent(),
            launch=board.launch_figures(),
            regret=board.regret,
            dead_letters=self.dead_letters,
            first_model_version=self.first_model_version,
            model_version=self.model_version,
            events_per_second=self.events / self.seconds if self.seconds else 0.0,
            seconds=self.seconds,
            memory_mb={name: round(mb) for name, mb in self.memory_mb.items()},
            lag=dict(self.lag),
            exit_codes=dict(self.exit_codes),
            impact=[
                GroupImpact(
                    group.name,
                    group.decisions,
                    group.value,
                    self.true_value.get(group.name, RunningMean()).mean,
                )
                for group in self.impact.groups()
            ],
            lifts=self.impact.lifts(),
        )


@dataclass(frozen=True)
class GroupImpact:
    """A group's value per decision as the impact report measured it from the labels, beside
    the simulation's own expected value of what the group was shown."""

    group: str
    decisions: int
    measured: Estimate
    true_value: float


@dataclass(frozen=True)
class DemoFigures:
    """What `nbo demo` reports: the loop's counts, the learned policy against the oracle and a
    random valid offer over the scoreboard's last window (`recent`), the launched offer's
    discovery, and the processes' health."""

    events: int
    decisions: int
    shown: int  # decisions with an offer shown
    interactions: int
    accepted: int
    acceptance: float  # over every shown decision
    recent: WindowFigures
    launch: LaunchFigures | None
    regret: float  # expected value lost to the oracle, over every shown decision
    dead_letters: int
    first_model_version: str
    model_version: str
    events_per_second: float
    seconds: float
    memory_mb: dict[str, int]  # resident memory per process
    lag: dict[str, int]  # records waiting, per μ-product
    exit_codes: dict[str, int]
    impact: list[GroupImpact] = field(default_factory=list)
    lifts: list[Lift] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """Every figure, the derived ratios included, for `nbo demo --report`."""
        figures = asdict(self)
        figures["recent"]["value_vs_oracle"] = self.recent.value_vs_oracle
        figures["recent"]["value_vs_random"] = self.recent.value_vs_random
        figures["recent"]["regret_shares"] = self.recent.regret_shares()
        return figures


class _Outputs:
    """Reads valid_offers, next_best_offers and dead_letter from the start, without a group."""

    def __init__(self, settings: Settings, bootstrap: str) -> None:
        self._consumer, self._names = reader_from_start(
            settings, bootstrap, LOOP_OUTPUTS, "nbo-demo"
        )
        self.valid: dict[str, dict[str, Any]] = {}
        self.decisions: dict[str, dict[str, Any]] = {}
        self.dead_letters = 0

    def read(self, timeout: float = 0.05) -> None:
        for message in self._consumer.consume(num_messages=5000, timeout=timeout):
            if message.error() is not None:
                continue
            topic = self._names[message.topic() or ""]
            if topic == "dead_letter":
                self.dead_letters += 1
                continue
            value = json.loads(message.value() or b"null")
            (self.valid if topic == "valid_offers" else self.decisions)[value["event_id"]] = value

    def close(self) -> None:
        self._consumer.close()


class _LagWatch:
    """Each μ-product's lag, looked up at most every `every` seconds (a look costs requests)."""

    def __init__(self, settings: Settings, bootstrap: str, every: float = 2.0) -> None:
        self._probes = stage_probes(settings, bootstrap)
        self._every = every
        self._looked = float("-inf")
        self._lag: dict[str, int] = {}

    def latest(self) -> dict[str, int]:
        if time.monotonic() - self._looked >= self._every:
            self._looked = time.monotonic()
            self._lag = {
                stage: sum(p.lag for p in probe.sample()) for stage, probe in self._probes.items()
            }
        return self._lag

    def close(self) -> None:
        for probe in self._probes.values():
            probe.close()


def _caught_up(lag: _LagWatch, stage: str, within: float = 30.0) -> dict[str, int]:
    """Wait, at most `within` seconds, for `stage` to have read the last answers (the impact
    report, read once the processes stop, counts the labels they make); the lag then."""
    deadline = time.monotonic() + within
    latest = lag.latest()
    while latest.get(stage, 0) > 0 and time.monotonic() < deadline:
        time.sleep(0.5)  # between looks at the group's offsets
        latest = lag.latest()
    return latest


def _check_alive(running: dict[str, Any], logs: Path) -> None:
    for name, process in running.items():
        if process.poll() is not None:
            tail = "\n".join((logs / f"{name}.log").read_text(errors="replace").splitlines()[-15:])
            raise NboError(f"demo: {name} exited with code {process.returncode}:\n{tail}")


def await_first_model(
    settings: Settings, bootstrap: str, running: dict[str, Any], logs: Path
) -> None:
    """Wait (bounded) for the learner's first publish: the loop then runs with all three up."""
    deadline = time.monotonic() + FIRST_BATCH_TIMEOUT
    while ModelRole.CHAMPION not in latest_snapshots(settings, bootstrap):
        _check_alive(running, logs)
        if time.monotonic() > deadline:
            raise NboError(
                f"demo: the learner published no model in {FIRST_BATCH_TIMEOUT:.0f} s "
                f"(logs in {logs})"
            )
        time.sleep(0.2)


def _await_batch(
    outputs: _Outputs, event_ids: list[str], running: dict[str, Any], logs: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    missing = list(event_ids)
    while missing:
        if time.monotonic() > deadline:
            raise NboError(
                f"demo: {len(missing)} of {len(event_ids)} events not decided in {timeout:.0f} s "
                f"(logs in {logs})"
            )
        _check_alive(running, logs)
        outputs.read()
        missing = [e for e in missing if e not in outputs.decisions or e not in outputs.valid]


def run_demo(
    settings: Settings,
    config: DemoConfig,
    on_progress: Callable[[DemoReport], None] | None = None,
) -> DemoReport:
    """Run the closed loop; return its report. Every process started here is stopped."""
    report = DemoReport()
    logs = Path(tempfile.mkdtemp(prefix="nbo-demo-logs-"))
    report.logs = str(logs)
    with broker_mod.broker_address(settings, start_embedded=True) as bootstrap:
        loop_settings = settings.model_copy(update={"broker_address": bootstrap})
        topics.create_topics(loop_settings, bootstrap)
        connectors.load_file(loop_settings, bootstrap, "rules", SAMPLE / "rules.yaml")
        world = make_world(config.world, config.customers, config.seed)
        offers = {o["offer_id"]: Offer.model_validate(o).model_dump() for o in world.offers()}
        produce(
            loop_settings,
            bootstrap,
            loop_settings.topic_name("offers"),
            [
                (oid, Offer.model_validate(o).model_dump_json().encode())
                for oid, o in offers.items()
            ],
        )
        produce(
            loop_settings,
            bootstrap,
            loop_settings.topic_name("customers"),
            [(c["customer_id"], json.dumps(c).encode()) for c in world.customer_records()],
        )
        channel = Channel(world, offers, seed=config.seed + 1)
        loop_settings, report.page, listening = _with_gateway(loop_settings, logs)
        running = {
            name: processes.spawn(loop_settings, args, logs / f"{name}.log")
            for name, args in APPS.items()
            if name != "gateway"
        }
        running["gateway"] = processes.spawn(
            loop_settings.model_copy(update={"gateway_socket_fd": listening.fileno()}),
            APPS["gateway"],
            logs / "gateway.log",
            pass_fds=(listening.fileno(),),
        )
        outputs = _Outputs(loop_settings, bootstrap)
        lag = _LagWatch(loop_settings, bootstrap)
        started = time.monotonic()
        try:
            await_first_model(loop_settings, bootstrap, running, logs)
            _loop(
                loop_settings,
                bootstrap,
                config,
                world,
                channel,
                outputs,
                running,
                logs,
                report,
                started,
                on_progress,
                lag,
            )
            report.lag = _caught_up(lag, "ranker")
        finally:
            outputs.close()
            lag.close()
            report.exit_codes = {name: processes.stop(process) for name, process in running.items()}
            listening.close()
        report.impact = read_impact(loop_settings, bootstrap)
    return report


def _with_gateway(settings: Settings, logs: Path) -> tuple[Settings, str, socket.socket]:
    """The settings for the demo's gateway (a key for the web channel of its own), the address
    of its page, and the socket it serves on, bound here (on the settings' port, or any free one
    when that is taken) and handed down to it: no other process can take the port between the
    choice and the gateway's start."""
    from pipeline.gateway.keys import add_key

    keys = logs / "gateway-keys.json"
    secret = add_key(keys, "web").secret
    listening = socket.socket()
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn's own
    try:
        listening.bind((settings.gateway_host, settings.gateway_port))
    except OSError:
        listening.bind((settings.gateway_host, 0))
    listening.listen(2048)  # uvicorn's own backlog
    port = listening.getsockname()[1]
    served = settings.model_copy(update={"gateway_keys_file": keys, "gateway_port": port})
    return served, f"http://{settings.gateway_host}:{port}/#key={secret}", listening


def _loop(
    settings: Settings,
    bootstrap: str,
    config: DemoConfig,
    world: SimulatedWorld,
    channel: Channel,
    outputs: _Outputs,
    running: dict[str, Any],
    logs: Path,
    report: DemoReport,
    started: float,
    on_progress: Callable[[DemoReport], None] | None,
    lag: _LagWatch,
) -> None:
    events_topic = settings.topic_name("events")
    interactions_topic = settings.topic_name("interactions")
    while True:
        elapsed = time.monotonic() - started
        if (
            config.events is not None and report.events >= config.events
        ) or elapsed >= config.seconds:
            break
        size = (
            config.batch
            if config.events is None
            else min(config.batch, config.events - report.events)
        )
        launch_due = config.launch_at is not None and report.events >= config.launch_at
        if launch_due and report.scoreboard.launched is None:
            _launch_new_offer(settings, bootstrap, world, channel, report.scoreboard)
        batch = world.events(size)
        produce(
            settings,
            bootstrap,
            events_topic,
            [(e["customer_id"], json.dumps(e).encode()) for e in batch],
        )
        timeout = FIRST_BATCH_TIMEOUT if report.events == 0 else BATCH_TIMEOUT
        _await_batch(outputs, [e["event_id"] for e in batch], running, logs, timeout)
        answers = []
        for event in batch:
            decision = outputs.decisions.pop(event["event_id"])
            outcome = channel.respond(outputs.valid.pop(event["event_id"]), decision)
            group = group_name(decision["group"], decision["baseline"])
            shown = decision["offers"][0]["value_now"] if decision["offers"] else 0.0
            report.true_value.setdefault(group, RunningMean()).add(outcome.learned.p_accept * shown)
            report.scoreboard.add(outcome, by_the_model=group == "treatment")
            answers.extend(outcome.interactions)
            report.first_model_version = report.first_model_version or decision["model_version"]
            report.model_version = decision["model_version"]
        produce(
            settings,
            bootstrap,
            interactions_topic,
            [(i["customer_id"], json.dumps(i).encode()) for i in answers],
        )
        report.events += len(batch)
        report.decisions += len(batch)
        report.interactions += len(answers)
        report.dead_letters = outputs.dead_letters
        report.seconds = time.monotonic() - started
        report.lag = lag.latest()
        report.memory_mb = {
            name: processes.resident_mb(process.pid)
            for name, process in running.items()
            if process.poll() is None  # one that died is reported by the next batch's check
        }
        if on_progress:
            on_progress(report)


def _launch_new_offer(
    settings: Settings, bootstrap: str, world: SimulatedWorld, channel: Channel, board: Scoreboard
) -> None:
    """A new DWH offer mid-run: on the offers topic for the μ-products, and into the world, whose
    customers like it better than every other offer of its category."""
    offer = Offer.model_validate(world.new_offer())
    produce(
        settings,
        bootstrap,
        settings.topic_name("offers"),
        [(offer.offer_id, offer.model_dump_json().encode())],
    )
    channel.add_offer(offer.model_dump())
    world.launch(offer.offer_id)
    board.launch(offer.offer_id)
