"""Dead letters: a record nbo could not use, with where it came from and why.

Every μ-product parses its source records here (`parse`): a record that fails its topic's
schema, or whose key is not its customer id, becomes a dead letter instead. `DeadLetterProducer`
sends them straight to the topic (a dataframe branch would deep-copy every output to serve a
rare record), and `processing_error_to_dead_letter` does the same for an unexpected error.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Producer
from pydantic import BaseModel, ValidationError
from quixstreams import message_context
from quixstreams.models import Row

from pipeline.contracts.schemas import DeadLetterKind, describe_errors
from pipeline.kafka.clients import producer_config
from pipeline.monitoring import metrics
from pipeline.settings import Settings

_VALUE_SHOWN = 2000
INVALID, KEY_MISMATCH = DeadLetterKind.INVALID_RECORD, DeadLetterKind.KEY_MISMATCH


@dataclass(frozen=True)
class Origin:
    topic: str
    partition: int | None
    offset: int | None
    key: str | None

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset} key={self.key}"

    @classmethod
    def of_current_message(cls, key: str | None) -> Origin:
        """Where the record a Quix app is processing now came from."""
        context = message_context()
        return cls(context.topic, context.partition, context.offset, key)


def dead_letter(
    stage: str, origin: Origin, reason: str, raw: bytes | str | None, kind: DeadLetterKind
) -> dict[str, Any]:
    """A DeadLetter record (see `pipeline.contracts.schemas.DeadLetter`) as a JSON-ready dict:
    `reason` names the record and the problem, `kind` classes it for counting."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    return {
        "schema_version": 1,
        "stage": stage,
        "source_topic": origin.topic,
        "partition": origin.partition,
        "offset": origin.offset,
        "key": origin.key,
        "reason": reason,
        "kind": str(kind),
        "value": (raw or "")[:_VALUE_SHOWN],
        "at": datetime.now(UTC).isoformat(),
    }


class DeadLetterProducer:
    """Sends dead letters from code that runs outside a Quix dataframe."""

    def __init__(self, settings: Settings, bootstrap: str) -> None:
        self.topic = settings.topic_name("dead_letter")
        self._producer = Producer(producer_config(settings, bootstrap))
        self.sent = 0

    def send(self, record: dict[str, Any]) -> None:
        key = record.get("key")
        self._producer.produce(
            self.topic, key=key.encode() if key else None, value=json.dumps(record).encode()
        )
        self._producer.poll(0)
        self.sent += 1
        source, kind = record.get("source_topic", ""), record.get("kind", "unknown")
        metrics.DEAD_LETTERS.labels(record.get("stage", ""), source, kind).inc()

    def flush(self, timeout: float = 10.0) -> None:
        self._producer.flush(timeout)


@dataclass(frozen=True)
class Parsed:
    """A source record, validated, or the dead letter that replaces it."""

    source: str  # logical topic
    record: BaseModel | None  # None for a tombstone
    dead: dict[str, Any] | None = None


def parse(
    raw: bytes | None,
    key: str | None,
    topics: dict[str, str],
    schemas: dict[str, type[BaseModel]],
    stage: str,
    origin: Origin | None = None,
) -> Parsed:
    """Validate one raw record from a source topic (`topics`: real name -> logical name), read
    at `origin` (default: the message a Quix app is processing)."""
    origin = origin or Origin.of_current_message(key)
    source = topics[origin.topic]
    if raw is None:
        return Parsed(source, None)
    try:
        record = schemas[source].model_validate_json(raw)
    except ValidationError as error:
        reason = f"invalid {source}: {describe_errors(error)}"
        return Parsed(source, None, dead_letter(stage, origin, reason, raw, INVALID))
    record_customer = getattr(record, "customer_id", None)
    if key != record_customer:
        reason = f"message key {key!r} differs from customer_id {record_customer!r}"
        return Parsed(source, None, dead_letter(stage, origin, reason, raw, KEY_MISMATCH))
    return Parsed(source, record)


def processing_error_to_dead_letter(dead_letters: DeadLetterProducer, stage: str) -> Any:
    """Quix error callback: an unexpected error dead-letters the record; the stream goes on."""

    def _on_error(error: Exception, row: Row | None, logger: logging.Logger) -> bool:
        if row is None:
            return False
        origin = Origin(row.topic, row.partition, row.offset, _key_text(row.key))
        reason = f"unexpected {type(error).__name__} in {stage}: {error}"
        logger.error("dead letter from %s: %s", origin, reason)
        raw = (
            row.value if isinstance(row.value, bytes | str) else json.dumps(row.value, default=str)
        )
        dead_letters.send(dead_letter(stage, origin, reason, raw, DeadLetterKind.PROCESSING_ERROR))
        return True

    return _on_error


def _key_text(key: Any) -> str | None:
    if isinstance(key, bytes):
        return key.decode(errors="replace")
    return None if key is None else str(key)
