"""Decisions and labels read into the impact report: the topics as they are now (`nbo
impact`), or one record at a time (`pipeline.impact.app`)."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel

from pipeline.contracts.schemas import Decision, Feedback, group_name
from pipeline.impact.report import ImpactReport
from pipeline.kafka.clients import consume
from pipeline.kafka.dead_letters import Origin, parse
from pipeline.settings import Settings

STAGE = "impact"
SOURCES: dict[str, type[BaseModel]] = {"next_best_offers": Decision, "feedback": Feedback}


def apply(report: ImpactReport, record: BaseModel) -> None:
    """Add a decision or a label to `report`."""
    if isinstance(record, Decision):
        report.add_decision(record.decision_id, group_name(record.group, record.baseline))
    elif isinstance(record, Feedback):
        report.add_feedback(record.decision_id, record.label, record.reward)


def read_impact(
    settings: Settings, bootstrap: str, refused: Callable[[str], None] | None = None
) -> ImpactReport:
    """Every decision on `next_best_offers` and every label on `feedback`, as a report; a
    record that cannot be read is left out and told to `refused`, naming it and the problem."""
    report = ImpactReport()
    names = {settings.topic_name(logical): logical for logical in SOURCES}
    for topic in names:
        for record in consume(settings, bootstrap, topic):
            origin = Origin(topic, record.partition, record.offset, record.key)
            parsed = parse(record.value, record.key, names, SOURCES, STAGE, origin)
            if parsed.dead is not None:
                if refused is not None:
                    refused(f"{origin}: {parsed.dead['reason']}")
            elif parsed.record is not None:
                apply(report, parsed.record)
    return report
