"""Loading the sample files onto the embedded broker and reading back exactly what was loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.connectors import load as connectors
from pipeline.connectors.files import parse_file
from pipeline.contracts.schemas import Offer
from pipeline.contracts.topics import create_topics
from pipeline.errors import LoadError
from pipeline.kafka.clients import consume, produce
from pipeline.settings import Settings


def _on_topic(settings: Settings, broker: str, logical: str) -> list[tuple[str | None, dict]]:  # type: ignore[type-arg]
    return [(r.key, r.json()) for r in consume(settings, broker, settings.topic_name(logical))]


def _expected(source: str, path: Path) -> dict[str, list[tuple[str, dict]]]:  # type: ignore[type-arg]
    by_topic: dict[str, list[tuple[str, dict]]] = {}  # type: ignore[type-arg]
    for _line, record in connectors.parse_source(source, path).records:
        topic = connectors.logical_topic(source, record)
        by_topic.setdefault(topic, []).append(
            (connectors.record_key(topic, record), json.loads(record.model_dump_json()))
        )
    return by_topic


@pytest.mark.parametrize(
    ("source", "file"),
    [
        ("offers", "offers.csv"),
        ("customers", "customers.csv"),
        ("rules", "rules.yaml"),
        ("events", "events.jsonl"),
    ],
)
def test_sample_file_reads_back_exactly(
    settings: Settings, broker: str, sample_dir: Path, source: str, file: str
) -> None:
    create_topics(settings, broker)
    report = connectors.load_file(settings, broker, source, sample_dir / file)
    assert report.rejected == []
    expected = _expected(source, sample_dir / file)
    assert dict(report.produced) == {topic: len(rows) for topic, rows in expected.items()}
    for topic, rows in expected.items():
        on_topic = _on_topic(settings, broker, topic)
        key_order = sorted(on_topic, key=lambda kv: json.dumps(kv, sort_keys=True))
        assert key_order == sorted(rows, key=lambda kv: json.dumps(kv, sort_keys=True))


def test_rules_are_split_by_kind(settings: Settings, broker: str, sample_dir: Path) -> None:
    create_topics(settings, broker)
    connectors.load_file(settings, broker, "rules", sample_dir / "rules.yaml")
    validation = _on_topic(settings, broker, "validation_rules")
    eligibility = _on_topic(settings, broker, "eligibilities")
    assert {value["kind"] for _, value in validation} == {"validation"}
    assert {value["kind"] for _, value in eligibility} == {"eligibility"}
    assert len(validation) + len(eligibility) == 12
    assert all(key == value["rule_id"] for key, value in validation + eligibility)


def test_bad_rows_are_rejected_and_the_rest_loaded(
    settings: Settings, broker: str, sample_dir: Path, tmp_path: Path
) -> None:
    create_topics(settings, broker)
    lines = (sample_dir / "offers.csv").read_text().splitlines()
    lines[3] = lines[3].replace(",mortgage,", ",crypto,")
    lines[7] = lines[7] + ",extra"
    path = tmp_path / "offers.csv"
    path.write_text("\n".join(lines) + "\n")
    report = connectors.load_file(settings, broker, "offers", path)
    assert [(row.line, row.field) for row in report.rejected] == [(4, "category"), (8, "(row)")]
    assert report.loaded == 28
    loaded_ids = {key for key, _ in _on_topic(settings, broker, "offers")}
    expected_ids = {r.offer_id for _, r in parse_file(path, Offer).records}  # type: ignore[attr-defined]
    assert loaded_ids == expected_ids and len(loaded_ids) == 28


def test_strict_load_produces_nothing_when_a_row_is_bad(
    settings: Settings, broker: str, sample_dir: Path, tmp_path: Path
) -> None:
    create_topics(settings, broker)
    lines = (sample_dir / "offers.csv").read_text().splitlines()
    lines[2] = lines[2].replace(",mortgage,", ",crypto,")
    path = tmp_path / "offers.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(LoadError, match=r"offers.csv:3: category"):
        connectors.load_file(settings, broker, "offers", path, strict=True)
    assert _on_topic(settings, broker, "offers") == []


def test_loaded_records_are_partitioned_like_quix_produces_them(
    settings: Settings, broker: str
) -> None:
    """A customer's records must land on the same partition number whoever produced them."""
    from quixstreams.kafka import Producer as QuixProducer

    create_topics(settings, broker)
    keys = [f"C{i:05d}" for i in range(40)]
    produce(settings, broker, settings.topic_name("events"), [(k, b"{}") for k in keys])
    with QuixProducer(broker_address=broker) as quix:
        for key in keys:
            quix.produce(settings.topic_name("interactions"), key=key.encode(), value=b"{}")
    ours = {r.key: r.partition for r in consume(settings, broker, settings.topic_name("events"))}
    quixs = {
        r.key: r.partition for r in consume(settings, broker, settings.topic_name("interactions"))
    }
    assert ours == quixs and len(set(ours.values())) == settings.topic_partitions
