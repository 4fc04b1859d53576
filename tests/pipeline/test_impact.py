"""The impact report: its intervals hold what they claim, it counts settled decisions only, and
`nbo impact` reads it from the topics."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pytest
from typer.testing import CliRunner

from local_kafka.cluster import free_port
from pipeline.cli.app import app
from pipeline.contracts.schemas import Decision, Feedback, Interaction, group_name
from pipeline.contracts.topics import create_topics
from pipeline.impact.report import ImpactReport
from pipeline.next_best_offer.feedback import InputPosition
from pipeline.next_best_offer.state import CustomerDecisions, MemoryState
from pipeline.review import registry
from pipeline.settings import Settings
from tests.factories import (
    START,
    candidate,
    catalogue_offer,
    eventually,
    make_ranker_processor,
    valid_offers,
)
from tests.pipeline.test_monitoring import scrape
from tests.streams import outputs, running, send


def test_the_lift_s_95_percent_interval_covers_the_true_lift_95_times_in_100() -> None:
    """Treatment accepts 30% at value 100, the random baseline 10%: a true lift of 20."""
    rng, covered, runs = random.Random(7), 0, 400
    for _ in range(runs):
        report = ImpactReport()
        for i in range(600):
            control = i % 6 == 0  # 100 control decisions of 600
            report.add_decision(f"d{i}", "control/random" if control else "treatment")
            accepted = rng.random() < (0.1 if control else 0.3)
            report.add_feedback(f"d{i}", accepted, 100.0 if accepted else 0.0)
        covered += report.lifts()[0].absolute.covers(20.0)
    assert 0.92 * runs <= covered <= 0.98 * runs


def test_each_decision_counts_what_its_labels_earned_so_far_and_labels_may_come_first() -> None:
    report = ImpactReport(open_decisions=3)
    report.add_feedback("d1", True, 50.0)  # read before its decision
    report.add_decision("d1", "treatment")
    report.add_decision("d2", "treatment")  # waiting for its labels: nothing earned yet
    report.add_decision("d3", "control/none")
    report.add_decision("d4", "control/none")  # the fourth: d1 is folded into its group
    assert [(g.name, g.decisions, g.value.mean) for g in report.groups()] == [
        ("treatment", 2, 25.0),
        ("control/none", 2, 0.0),
    ]
    report.add_feedback("d1", True, 99.0)  # d1 was folded: this one is not counted
    report.add_feedback("d2", False, 0.0)  # told silent...
    report.add_feedback("d2", True, 30.0)  # ...then accepted late: what it earned in all
    treatment = report.groups()[0]
    assert (treatment.decisions, treatment.value.mean, treatment.acceptance.mean) == (2, 40.0, 1.0)
    lift = report.lifts()[0]
    assert lift.baseline == "control/none" and lift.absolute.mean == 40.0
    assert lift.relative.mean != lift.relative.mean  # NaN: a baseline that earns nothing


def made_by_a_ranker(
    tmp_path: Path,
) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]], ImpactReport]:
    """Decisions and labels as the ranker makes them, half of 40 customers in control, a third
    accepting; and the report they make."""
    ranker = make_ranker_processor(tmp_path, [catalogue_offer("a"), catalogue_offer("b")],
                                   control_share=0.5)  # fmt: skip
    decisions, labels, expected = [], [], ImpactReport()
    for i in range(40):
        book = CustomerDecisions(MemoryState())
        record = valid_offers(candidate("a", 1), candidate("b", 1), customer_id=f"C{i}",
                              event_id=f"e{i}")  # fmt: skip
        *_, decision = ranker.handle(book, record, InputPosition("valid_offers", 0, i), f"C{i}")
        assert isinstance(decision, Decision)
        decisions.append((f"C{i}", decision.model_dump(mode="json")))
        expected.add_decision(decision.decision_id, group_name(decision.group, decision.baseline))
        if i % 3 == 1:
            answer = Interaction(interaction_id=f"i{i}", decision_id=decision.decision_id,
                                 customer_id=f"C{i}", offer_id=decision.offers[0].offer_id,
                                 channel="web", outcome="accept", timestamp=START)  # fmt: skip
            for label in ranker.handle(book, answer, InputPosition("interactions", 0, i), "C"):
                assert isinstance(label, Feedback)
                labels.append((f"C{i}", label.model_dump(mode="json")))
                expected.add_feedback(label.decision_id, label.label, label.reward)
    return decisions, labels, expected


def test_nbo_impact_reads_the_report_from_the_topics(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings()
    create_topics(settings, settings.broker_address or "")
    decisions, labels, expected = made_by_a_ranker(tmp_path)
    send(settings, "next_best_offers", decisions)
    send(settings, "feedback", labels)
    env = {"NBO_BROKER_ADDRESS": settings.broker_address or "",
           "NBO_TOPIC_PREFIX": settings.topic_prefix}  # fmt: skip
    result = CliRunner().invoke(app, ["impact"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    groups, lifts = result.output.split("treatment over")
    rows = {line.split("│")[1].strip(): [cell.strip() for cell in line.split("│")[2:-1]]
            for line in groups.splitlines() if line.count("│") >= 3}  # fmt: skip
    assert set(rows) == {"treatment", "control/random"} and len(labels) == 13
    for group in expected.groups():
        assert rows[group.name] == [str(group.decisions), str(group.acceptance), str(group.value)]
    assert "control/random" in lifts


def test_the_impact_process_logs_the_report_to_mlflow_and_refuses_what_it_cannot_read(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    port = free_port()
    settings = make_settings(impact_log_interval=0.5, metrics_port=port, progress_interval=0.5)
    create_topics(settings, settings.broker_address or "")
    decisions, labels, expected = made_by_a_ranker(tmp_path)
    send(settings, "next_best_offers", decisions)
    send(settings, "feedback", [*labels, ("C1", b"{not json")])
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    treatment = expected.groups()[0]
    assert treatment.name == "treatment"

    def logged() -> Any:
        runs = mlflow.search_runs(experiment_names=[registry.EXPERIMENT],
                                  filter_string="attributes.run_name LIKE 'impact-%'")  # fmt: skip
        if len(runs) and runs.iloc[0].get("metrics.decisions/treatment") == treatment.decisions:
            return dict(runs.iloc[0])
        return None

    address = f"http://127.0.0.1:{port}"

    def caught_up() -> dict[str, float] | None:
        """Its metrics once its progress watch has found nothing waiting, and it is ready."""
        samples = scrape(address)
        lags = [v for k, v in samples.items() if k.startswith("nbo_consumer_lag{")]
        ready = httpx.get(f"{address}/readyz", timeout=10)
        return samples if lags and sum(lags) == 0 and ready.status_code == 200 else None

    with running(settings, "run", "impact"):
        run = eventually(logged, within=60, what="the report's figures in MLflow")
        dead = outputs(settings, "dead_letter", 1)[0]
        samples = eventually(caught_up, within=30, what="the impact process caught up and ready")
        assert httpx.get(f"{address}/healthz", timeout=10).status_code == 200
    read = {k: v for k, v in samples.items() if k.startswith("nbo_records_in_total{")}
    assert read == {
        'nbo_records_in_total{"stage": "impact", "topic": "feedback"}': len(labels) + 1,
        'nbo_records_in_total{"stage": "impact", "topic": "next_best_offers"}': len(decisions),
    }
    refused = {
        "reason": "invalid_record",
        "stage": "impact",
        "topic": settings.topic_name("feedback"),
    }
    assert samples[f"nbo_dead_letters_total{json.dumps(refused, sort_keys=True)}"] == 1
    assert run["metrics.value/treatment"] == pytest.approx(treatment.value.mean)
    assert run["metrics.lift/control/random"] == pytest.approx(expected.lifts()[0].absolute.mean)
    assert run["params.control_share"] == "0.05"
    assert dead["stage"] == "impact" and dead["kind"] == "invalid_record"
    assert dead["source_topic"] == settings.topic_name("feedback")
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run["run_id"], "plots")}
    assert artifacts == {"plots/impact.png"}  # logged when it stopped
