"""Operators see a running loop as Prometheus does: Valid Offers, the ranker, the learner and the
gateway as their own processes on the session broker, each serving its metrics, scraped by a real
Prometheus (Debian's package) that evaluates the committed alert rules with their windows 60×
shorter (minutes read as seconds).

The tests run in the order written: the last two stop the learner and wedge the ranker."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from local_kafka.cluster import free_port
from pipeline.cli.app import app
from pipeline.kafka.clients import consume
from pipeline.settings import Settings
from tests.factories import customer, event, eventually, interaction, with_offers
from tests.pipeline.test_monitoring import MONITORING, scrape
from tests.streams import gateway, running, send

pytestmark = pytest.mark.slow

STAGES = ("valid-offers", "ranker", "learner")
CUSTOMERS = [f"M{i:02d}" for i in range(12)]
START = datetime(2026, 3, 2, 9, tzinfo=UTC)
WAIT = 90.0  # seconds any alert may take to fire (its scaled window, `for` and a few scrapes)


def _prometheus() -> str | None:
    found = shutil.which("prometheus")
    if found is None and os.environ.get("CI") == "true":
        pytest.fail("prometheus is missing: .ci/run installs Debian's prometheus package")
    return found


def scaled(rules: str) -> str:
    """The rules with each window and `for` in seconds instead of minutes."""
    return re.sub(r"(\[|for: )(\d+)m\b", r"\g<1>\g<2>s", rules)


@dataclass
class Loop:
    settings: Settings
    metrics: dict[str, str]  # job → the address its metrics are served at
    processes: dict[str, subprocess.Popen[bytes]]
    prometheus: str
    events_sent: int = 0
    decided: dict[str, dict[str, Any]] = field(default_factory=dict)  # event id → decision

    def query(self, expression: str) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.prometheus}/api/v1/query", params={"query": expression},
                           timeout=10).json()  # fmt: skip
        assert answer["status"] == "success", (expression, answer)
        return list(answer["data"]["result"])

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert Prometheus has now, pending or firing."""
        answer = httpx.get(f"{self.prometheus}/api/v1/alerts", timeout=10).json()
        return list(answer["data"]["alerts"])

    def firing(self) -> list[dict[str, Any]]:
        return [a for a in self.alerts() if a["state"] == "firing"]

    def await_firing(self, name: str, while_waiting: Callable[[], object] = lambda: None,
                     **labels: str) -> dict[str, Any]:  # fmt: skip
        """The alert `name` (with `labels`) once Prometheus fires it; `while_waiting` is called
        between looks (to keep traffic flowing)."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            for alert in self.firing():
                if (
                    alert["labels"]["alertname"] == name
                    and labels.items() <= alert["labels"].items()
                ):
                    return alert
            while_waiting()
            time.sleep(0.5)  # between looks at Prometheus; the wait is bounded by WAIT
        raise AssertionError(f"{name} {labels} did not fire within {WAIT:g} s: {self.firing()}")

    def events(self, count: int, **fields: Any) -> list[str]:
        """Send `count` journey events for the loop's customers in turn; their ids."""
        sent = []
        for _ in range(count):
            number = self.events_sent
            self.events_sent += 1
            who = CUSTOMERS[number % len(CUSTOMERS)]
            at = START + timedelta(hours=number)  # a new day for every customer now and then
            sent.append((who, event(f"m{number}", who, at, **fields)))
        send(self.settings, "events", sent)
        return [e["event_id"] for _, e in sent]

    def decisions(self, event_ids: list[str]) -> list[dict[str, Any]]:
        """The decisions on `event_ids`, once all are on next_best_offers."""
        wanted = set(event_ids)

        def read() -> list[dict[str, Any]] | None:
            topic = self.settings.topic_name("next_best_offers")
            for record in consume(self.settings, self.settings.broker_address or "", topic):
                decision = record.json()
                self.decided[decision["event_id"]] = decision
            return [self.decided[e] for e in event_ids] if wanted <= self.decided.keys() else None

        return eventually(read, within=90, what=f"decisions on {len(event_ids)} events", pause=0.2)

    def accept_first_offers(self, decisions: list[dict[str, Any]]) -> int:
        """Impression and accept of each decision's first offer; how many were accepted."""
        reactions = []
        for d in decisions:
            if d["offers"]:
                at = datetime.fromisoformat(d["timestamp"]) + timedelta(minutes=1)
                first = d["offers"][0]["offer_id"]
                for outcome in ("impression", "accept"):
                    reactions.append(
                        interaction(d["decision_id"], d["customer_id"], first, outcome, at)
                    )
        send(self.settings, "interactions", reactions)
        return len(reactions) // 2

    def topic(self, logical: str) -> list[dict[str, Any]]:
        settings = self.settings
        records = consume(settings, settings.broker_address or "", settings.topic_name(logical))
        return [r.json() for r in records]


@contextmanager
def prometheus_scraping(directory: Path, targets: dict[str, str]) -> Iterator[str]:
    """A Prometheus scraping `targets` (job → address) every second, with the scaled rules."""
    (directory / "alerts.yml").write_text(scaled((MONITORING / "alerts.yml").read_text()))
    jobs = [
        {"job_name": job, "static_configs": [{"targets": [address.removeprefix("http://")]}]}
        for job, address in targets.items()
    ]
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": ["alerts.yml"],
        "scrape_configs": jobs,
    }
    (directory / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    port = free_port()
    command = [
        _prometheus() or "prometheus",
        f"--config.file={directory / 'prometheus.yml'}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    with (directory / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    address = f"http://127.0.0.1:{port}"
    try:
        eventually(lambda: _answers(f"{address}/-/ready") or None, within=60,
                   what="Prometheus ready")  # fmt: skip
        yield address
    finally:
        process.terminate()
        process.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture(scope="module")
def loop(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    if _prometheus() is None:
        pytest.skip("Prometheus is not installed (apt-get install prometheus)")
    directory = tmp_path_factory.mktemp("monitored-loop")
    settings = with_offers(
        Settings(
            broker_address=broker,
            topic_prefix=f"mon{os.getpid()}",
            state_dir=directory / "state",
            mlflow_tracking=False,
            exploration="greedy",
            feature_set="tests.plugins:hangs_when_told",
            model_publish_interval=0.5,
            progress_interval=1.0,
            stall_timeout=30.0,
            stall_exit_grace=5.0,
            gateway_keys_file=directory / "keys.json",
        )
    )
    send(settings, "customers", [(c, customer(c, "affluent")) for c in CUSTOMERS])
    ports = {stage: free_port() for stage in STAGES}

    def on_port(stage: str) -> Settings:
        return settings.model_copy(update={"metrics_port": ports[stage]})

    with (
        running(on_port("valid-offers"), "run", "valid-offers") as valid_offers,
        running(on_port("ranker"), "run", "ranker") as ranker,
        running(on_port("learner"), "run", "learner") as learner,
        gateway(settings) as (gateway_address, gateway_process),
    ):
        served = {f"nbo-{stage}": f"http://127.0.0.1:{port}" for stage, port in ports.items()}
        for address in served.values():
            eventually(lambda a=address: _answers(f"{a}/readyz") or None, within=90,
                       what=f"{address} ready")  # fmt: skip
        processes = {"nbo-valid-offers": valid_offers, "nbo-ranker": ranker,
                     "nbo-learner": learner, "nbo-gateway": gateway_process}  # fmt: skip
        with prometheus_scraping(directory, {**served, "nbo-gateway": gateway_address}) as address:
            loop = Loop(settings, served, processes, address)
            accepted = loop.accept_first_offers(loop.decisions(loop.events(24)))
            eventually(lambda: _learned(loop) >= accepted or None, within=90,
                       what="the learner learned the accepts")  # fmt: skip
            yield loop


def _learned(loop: Loop) -> float:
    return scrape(loop.metrics["nbo-learner"]).get("nbo_labels_learned_total{}", 0.0)


def test_prometheus_evaluates_every_rule_and_none_fires_in_a_healthy_loop(loop: Loop) -> None:
    # start-up (imports, group joins, the first models) is not a steady loop: once no alert is
    # even pending, 16 s of steady traffic with its answers, longer than any scaled window
    eventually(lambda: loop.alerts() == [], within=60, what="no alert after start-up", pause=0.5)
    for _second in range(16):
        loop.accept_first_offers(loop.decisions(loop.events(3)))
        assert loop.firing() == []
    groups = httpx.get(f"{loop.prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) == 7
    assert [(r["name"], r["health"]) for r in rules if r["health"] != "ok"] == []


def test_every_dashboard_query_returns_series(loop: Loop) -> None:
    dashboard = json.loads((MONITORING / "dashboard.json").read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    empty = [q for q in queries if not loop.query(q.replace("$__rate_interval", "10s"))]
    assert empty == []


def test_the_counters_equal_what_happened_on_the_topics(loop: Loop) -> None:
    events = loop.settings.topic_name("events")
    send(loop.settings, "events", [("M00", b"{not json"), ("M01", event("x1", "M02", START))])
    unknown = interaction("d-nowhere", "M03", "offer-a", "accept", START)
    send(loop.settings, "interactions", [unknown])
    dead = eventually(lambda: d if len(d := loop.topic("dead_letter")) >= 3 else None,
                      within=60, what="the three dead letters", pause=0.5)  # fmt: skip
    sent = {"events": loop.events_sent + 2, "customers": len(CUSTOMERS)}

    def settled() -> dict[str, dict[str, float]] | None:
        counts = {job: scrape(address) for job, address in loop.metrics.items()}
        feedback = loop.topic("feedback")
        if counts["nbo-learner"].get("nbo_labels_learned_total{}") != len(feedback):
            return None
        return counts

    counts = eventually(settled, within=90, what="every label learned")
    vo, ranker, learner = counts["nbo-valid-offers"], counts["nbo-ranker"], counts["nbo-learner"]

    def count(samples: dict[str, float], name: str, **labels: str) -> float:
        return samples.get(name + json.dumps(labels, sort_keys=True), 0.0)

    interactions, valid, decisions = (
        len(loop.topic("interactions")), len(loop.topic("valid_offers")),
        len(loop.topic("next_best_offers")),
    )  # fmt: skip
    feedback = len(loop.topic("feedback"))
    assert count(vo, "nbo_records_in_total", stage="valid-offers", topic="events") == sent["events"]
    assert count(vo, "nbo_records_in_total", stage="valid-offers", topic="customers") == len(
        CUSTOMERS
    )
    assert (
        count(vo, "nbo_records_in_total", stage="valid-offers", topic="interactions")
        == interactions
    )
    assert count(vo, "nbo_records_out_total", stage="valid-offers", topic="valid_offers") == valid
    assert count(ranker, "nbo_records_in_total", stage="ranker", topic="valid_offers") == valid
    assert (
        count(ranker, "nbo_records_out_total", stage="ranker", topic="next_best_offers")
        == decisions
    )
    assert sum(v for k, v in ranker.items() if k.startswith("nbo_decisions_total")) == decisions
    assert count(ranker, "nbo_decision_latency_seconds_count") == decisions
    assert count(ranker, "nbo_records_out_total", stage="ranker", topic="feedback") == feedback
    assert sum(v for k, v in ranker.items() if k.startswith("nbo_labels_told_total")) == feedback
    assert count(learner, "nbo_records_in_total", stage="learner", topic="feedback") == feedback
    by_kind = {(d["stage"], d["kind"]) for d in dead}
    assert by_kind == {("valid-offers", "invalid_record"), ("valid-offers", "key_mismatch"),
                       ("ranker", "unknown_reference")}  # fmt: skip
    for stage, kind in by_kind:
        topic = events if stage == "valid-offers" else loop.settings.topic_name("interactions")
        expected = sum(1 for d in dead if (d["stage"], d["kind"]) == (stage, kind))
        samples = vo if stage == "valid-offers" else ranker
        assert (
            count(samples, "nbo_dead_letters_total", stage=stage, topic=topic, reason=kind)
            == expected
        )


def test_nbo_status_reads_the_same_numbers(loop: Loop) -> None:
    settings, urls = loop.settings, [loop.metrics["nbo-valid-offers"], loop.metrics["nbo-ranker"]]
    env = {"NBO_BROKER_ADDRESS": settings.broker_address or "", "COLUMNS": "250",
           "NBO_TOPIC_PREFIX": settings.topic_prefix}  # fmt: skip
    arguments = ["status", "--interval", "0.5"] + [a for url in urls for a in ("--metrics", url)]
    result = CliRunner().invoke(app, arguments, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[2].strip(): line for line in result.output.splitlines()
            if line.count("│") > 9 and "http" in line}  # fmt: skip
    assert set(rows) == {"valid-offers", "ranker"}
    for stage, url in zip(("valid-offers", "ranker"), urls, strict=True):
        dead = sum(v for k, v in scrape(url).items() if k.startswith("nbo_dead_letters_total"))
        assert f"{dead:,.0f} (+" in rows[stage]


def test_a_refused_record_raises_the_dead_letter_alert(loop: Loop) -> None:
    send(loop.settings, "events", [("M04", b'{"event_id": 7}')])
    alert = loop.await_firing("NboDeadLetters", stage="valid-offers", reason="invalid_record")
    assert alert["annotations"]["summary"] == "valid-offers refuses records (invalid_record)"


def test_a_starved_ranker_raises_the_latency_alert(loop: Loop) -> None:
    ranker = loop.processes["nbo-ranker"]

    def starve() -> None:
        """A second without CPU for the ranker, with events arriving, then a little with."""
        loop.events(2)
        ranker.send_signal(signal.SIGSTOP)
        try:
            time.sleep(1.0)  # the starvation itself: decisions wait this long
        finally:
            ranker.send_signal(signal.SIGCONT)

    loop.await_firing("NboDecisionLatencyHigh", while_waiting=starve)


def test_a_stopped_learner_raises_the_stale_model_and_down_alerts(loop: Loop) -> None:
    learner = loop.processes["nbo-learner"]
    learner.terminate()
    assert learner.wait(timeout=60) == 0
    keep_telling = lambda: loop.accept_first_offers(loop.decisions(loop.events(2)))  # noqa: E731
    loop.await_firing("NboModelNotUpdated", while_waiting=keep_telling)
    loop.await_firing("NboDown", job="nbo-learner")


def test_a_wedged_ranker_raises_the_stall_lag_and_stopped_decisions_alerts(loop: Loop) -> None:
    ranker = loop.processes["nbo-ranker"]
    loop.events(1, attributes={"hang": True})  # its features never come: the loop hangs
    keep_coming = lambda: loop.events(2)  # noqa: E731
    loop.await_firing("NboStalling", while_waiting=keep_coming, stage="ranker")
    loop.await_firing("NboLagGrowing", while_waiting=keep_coming, stage="ranker")
    loop.await_firing("NboDecisionsStopped", while_waiting=keep_coming)
    # At NBO_STALL_TIMEOUT it would stop itself (test_progress holds it): not waited for here
    ranker.kill()
