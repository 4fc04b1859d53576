"""The impact report of the decisions and labels on the topics now (`nbo impact`)."""

from __future__ import annotations

from collections.abc import Callable

from pipeline.impact.app import SOURCES, STAGE, apply
from pipeline.impact.report import ImpactReport
from pipeline.kafka.clients import consume
from pipeline.kafka.dead_letters import Origin, parse
from pipeline.settings import Settings


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
