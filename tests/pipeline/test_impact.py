"""The impact report: its intervals hold what they claim, it counts settled decisions only, and
`nbo impact` reads it from the topics."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from typer.testing import CliRunner

from pipeline.cli.app import app
from pipeline.contracts.topics import create_topics
from pipeline.impact.report import ImpactReport
from pipeline.settings import Settings
from tests.streams import send


def decision(decision_id: str, group: str = "treatment", baseline: str | None = None,
             offers: bool = True) -> dict[str, Any]:  # fmt: skip
    return {"decision_id": decision_id, "group": group, "baseline": baseline,
            "offers": [{"offer_id": "a"}] if offers else []}  # fmt: skip


def label(decision_id: str, reward: float) -> dict[str, Any]:
    return {"decision_id": decision_id, "label": reward > 0, "reward": reward}


def test_the_lift_s_95_percent_interval_covers_the_true_lift_95_times_in_100() -> None:
    """Treatment accepts 30% at value 100, the random baseline 10%: a true lift of 20."""
    rng, covered, runs = random.Random(7), 0, 400
    for _ in range(runs):
        report = ImpactReport()
        for i in range(600):
            control = i % 6 == 0  # 100 control decisions of 600
            report.add_decision(decision(f"d{i}", *(("control", "random") if control else ())))
            accepted = rng.random() < (0.1 if control else 0.3)
            report.add_feedback(label(f"d{i}", 100.0 if accepted else 0.0))
        covered += report.lifts()[0].absolute.covers(20.0)
    assert 0.92 * runs <= covered <= 0.98 * runs


def test_only_settled_decisions_count_and_labels_may_come_first() -> None:
    report = ImpactReport()
    report.add_feedback(label("d1", 50.0))  # read before its decision
    report.add_decision(decision("d1"))
    report.add_decision(decision("d2"))  # waiting for its labels: not counted yet
    report.add_decision(decision("d3", "control", "none", offers=False))  # nothing to wait for
    report.add_decision(decision("d4", "control", "none", offers=False))
    assert [(g.name, g.decisions, g.value.mean) for g in report.groups()] == [
        ("treatment", 1, 50.0),
        ("control/none", 2, 0.0),
    ]
    report.add_feedback(label("d2", 0.0))  # told silent...
    report.add_feedback(label("d2", 30.0))  # ...then accepted late: what it earned in all
    treatment = report.groups()[0]
    assert (treatment.decisions, treatment.value.mean, treatment.acceptance.mean) == (2, 40.0, 1.0)
    lift = report.lifts()[0]
    assert lift.baseline == "control/none" and lift.absolute.mean == 40.0
    assert lift.relative.mean != lift.relative.mean  # NaN: a baseline that earns nothing


def test_nbo_impact_reads_the_report_from_the_topics(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    create_topics(settings, settings.broker_address or "")
    decisions = [decision(f"d{i}", *(("control", "random") if i % 4 == 0 else ()))
                 for i in range(40)]  # fmt: skip
    send(settings, "next_best_offers", [(f"C{i}", d) for i, d in enumerate(decisions)])
    send(settings, "feedback", [(f"C{i}", label(f"d{i}", 100.0 * (i % 3 == 1)))
                                for i in range(40)])  # fmt: skip
    env = {"NBO_BROKER_ADDRESS": settings.broker_address or "",
           "NBO_TOPIC_PREFIX": settings.topic_prefix}  # fmt: skip
    result = CliRunner().invoke(app, ["impact"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    groups, lifts = result.output.split("treatment over")
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip()
            for line in groups.splitlines() if line.count("│") >= 3}  # fmt: skip
    assert (rows["treatment"], rows["control/random"]) == ("30", "10")  # decisions per group
    assert "control/random" in lifts and "[" in lifts
