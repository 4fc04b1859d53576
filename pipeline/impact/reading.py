"""The impact report of the decisions and labels on the topics now."""

from __future__ import annotations

from pipeline.impact.report import ImpactReport
from pipeline.kafka.clients import consume
from pipeline.settings import Settings


def read_impact(settings: Settings, bootstrap: str) -> ImpactReport:
    """Every decision on `next_best_offers` and every label on `feedback`, as a report."""
    report = ImpactReport()
    for record in consume(settings, bootstrap, settings.topic_name("next_best_offers")):
        if record.value:
            report.add_decision(record.json())
    for record in consume(settings, bootstrap, settings.topic_name("feedback")):
        if record.value:
            report.add_feedback(record.json())
    return report
