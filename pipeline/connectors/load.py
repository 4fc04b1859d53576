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

from pipeline.connectors.files import ParsedFile, RejectedRow, parse_file
from pipeline.contracts.schemas import Record, Rule, RuleKind
from pipeline.contracts.topics import TOPICS, spec
from pipeline.errors import LoadError
from pipeline.kafka.clients import produce
from pipeline.settings import Settings


def _sources() -> dict[str, type[Record]]:
    """What a file can be loaded as: each topic fed from outside the loop (its records are
    strict `Record`s), by name, and "rules", whose kind routes each to its rules topic."""
    sources: dict[str, type[Record]] = {}
    for topic in TOPICS:
        if issubclass(topic.schema, Record) and topic.schema is not Rule:
            sources[topic.logical] = topic.schema
    return {**sources, "rules": Rule}


SOURCES = _sources()


@dataclass
class LoadReport:
    file: Path
    produced: Counter[str] = field(default_factory=Counter)  # topic -> records
    rejected: list[RejectedRow] = field(default_factory=list)

    @property
    def loaded(self) -> int:
        return sum(self.produced.values())


def record_key(topic: str, record: Record) -> str:
    """The message key of `record` on logical `topic`: the field the topics table names."""
    return str(getattr(record, spec(topic).key))


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
            (record_key(topic, record), record.model_dump_json().encode())
        )
    for topic, items in by_topic.items():
        real_topic = settings.topic_name(topic)
        report.produced[topic] = produce(settings, bootstrap, real_topic, items, on_progress)
    return report
