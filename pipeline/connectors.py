"""Source connectors: files from the DWH, the CRM and the rules repository onto their topics.

A load validates the whole file first, then produces the good records keyed as the topic says
(offers by offer id, customers by customer id, rules by rule id, events by customer id).
With `strict`, any rejected row refuses the load before anything is produced.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import LoadError
from pipeline.kafka_io import produce
from pipeline.loaders import ParsedFile, RejectedRow, parse_file
from pipeline.schemas import Customer, Interaction, JourneyEvent, Offer, Record, Rule, RuleKind
from pipeline.settings import Settings

SOURCES: dict[str, type[Record]] = {
    "offers": Offer,
    "customers": Customer,
    "rules": Rule,
    "events": JourneyEvent,
    "interactions": Interaction,
}


@dataclass
class LoadReport:
    file: Path
    produced: Counter[str] = field(default_factory=Counter)  # topic -> records
    rejected: list[RejectedRow] = field(default_factory=list)

    @property
    def loaded(self) -> int:
        return sum(self.produced.values())


def record_key(record: Record) -> str:
    for name in ("offer_id", "rule_id", "customer_id"):
        if hasattr(record, name):
            return str(getattr(record, name))
    raise TypeError(f"no key field on {type(record).__name__}")


def logical_topic(source: str, record: Record) -> str:
    """The topic a record of `source` belongs on (rules split by their kind)."""
    if isinstance(record, Rule):
        return "validation_rules" if record.kind == RuleKind.VALIDATION else "eligibilities"
    return source


def parse_source(source: str, path: Path) -> ParsedFile:
    if source not in SOURCES:
        raise LoadError(f"unknown source {source!r}; known: {', '.join(SOURCES)}")
    return parse_file(path, SOURCES[source])


def load_file(
    settings: Settings,
    bootstrap: str,
    source: str,
    path: Path,
    *,
    strict: bool = False,
    on_progress: Callable[[int], None] | None = None,
    parsed: ParsedFile | None = None,
) -> LoadReport:
    """Validate `path` as `source` records and produce the good ones to their topics."""
    parsed = parsed or parse_source(source, path)
    report = LoadReport(file=path, rejected=list(parsed.rejected))
    if strict and parsed.rejected:
        raise LoadError(
            f"load of {path.name} refused (--strict): {len(parsed.rejected)} rejected rows, "
            f"first: {parsed.rejected[0]}"
        )
    by_topic: dict[str, list[tuple[str, bytes]]] = {}
    for _line, record in parsed.records:
        topic = logical_topic(source, record)
        by_topic.setdefault(topic, []).append(
            (record_key(record), record.model_dump_json().encode())
        )
    for topic, items in by_topic.items():
        real_topic = settings.topic_name(topic)
        report.produced[topic] = produce(settings, bootstrap, real_topic, items, on_progress)
    return report
