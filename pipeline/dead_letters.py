"""Dead letters: a record nbo could not use, with where it came from and why.

Inside a Quix app, dead letters are an output branch of the dataframe. Outside one (the global
table reader), `DeadLetterProducer` sends them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Producer
from quixstreams import message_context

from pipeline.kafka_io import producer_config
from pipeline.settings import Settings

_VALUE_SHOWN = 2000


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


def dead_letter(stage: str, origin: Origin, reason: str, raw: bytes | str | None) -> dict[str, Any]:
    """A DeadLetter record (see `pipeline.schemas.DeadLetter`) as a JSON-ready dict."""
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

    def flush(self, timeout: float = 10.0) -> None:
        self._producer.flush(timeout)
