"""Decisions already emitted, which a restarted ranker repeats instead of deciding anew.

Under at-least-once a ranker that crashed processes the records since its last checkpoint
again, so it decides some events a second time. The channel has already shown the first
decision; if the second differed (a newer model, other exploration draws), the ranker's state
would hold the second, and the customer's answer to an offer only the first had would name an
offer the ranker does not know: that label would be lost to the dead-letter topic.

So the first time a ranker process reads a partition of its input, it reads the tail of the
same partition of `next_best_offers` (decisions are keyed by customer, co-partitioned with the
inputs), and a decision found there is repeated as it was emitted: its offers, their order,
P(accept), value and propensity, with the features computed again from the same valid offers.
It is kept in the customer's state, not emitted a second time. Exactly-once needs none of this
(nothing committed is processed again), so the reader is only made under at-least-once.
"""

from __future__ import annotations

import logging
from typing import Protocol

from confluent_kafka import Consumer, KafkaError, TopicPartition
from pydantic import ValidationError

from pipeline.contracts.schemas import Decision
from pipeline.errors import BrokerError
from pipeline.settings import Settings

log = logging.getLogger(__name__)

# Records read back per partition: more than a ranker emits between two checkpoints (the commit
# interval, plus the producer's flush) at the rates nbo is built for.
TAIL = 5_000


class EarlierDecisions(Protocol):
    """What the ranker asks of the decisions emitted before it started."""

    def pop(self, partition: int, decision_id: str) -> Decision | None: ...


class EmittedDecisions:
    """The decisions on the tail of each `next_best_offers` partition, read once per partition
    this process reads, by decision id."""

    def __init__(self, settings: Settings, bootstrap: str, tail: int = TAIL) -> None:
        self._config = {
            **settings.kafka_config(bootstrap),
            "group.id": f"{settings.consumer_group('ranker')}.emitted",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
        self._topic = settings.topic_name("next_best_offers")
        self._timeout = settings.broker_start_timeout
        self._tail = tail
        self._read: dict[int, dict[str, Decision]] = {}
        self._asked: dict[int, int] = {}  # per partition: the inputs asked about so far

    def pop(self, partition: int, decision_id: str) -> Decision | None:
        """The decision `decision_id` if it was emitted before this process read `partition`;
        each is given once. Past its first `tail` inputs a partition's are let go: more inputs
        than the tail holds are never processed again after a crash (what the tail is sized
        for), and the rest of it would be kept for as long as the process runs."""
        if partition not in self._read:
            self._read[partition], self._asked[partition] = self._read_tail(partition), 0
        self._asked[partition] += 1
        found = self._read[partition].pop(decision_id, None)
        if self._asked[partition] >= self._tail:
            self._read[partition].clear()
        return found

    def _read_tail(self, partition: int) -> dict[str, Decision]:
        consumer = Consumer(self._config)
        try:
            where = TopicPartition(self._topic, partition)
            low, high = consumer.get_watermark_offsets(where, timeout=self._timeout)
            decisions: dict[str, Decision] = {}
            if high <= low:
                return decisions
            # Tansu (0.6) answers with the last batch's base offset + 1 as the end, so more than
            # the tail may be read: only the last `tail` read are kept
            consumer.assign([TopicPartition(self._topic, partition, max(low, high - self._tail))])
            while True:
                message = consumer.poll(self._timeout)
                if message is None:
                    raise BrokerError(f"{self._topic}[{partition}]: not read to its end in time")
                problem = message.error()
                if problem is not None:
                    if problem.code() == KafkaError._PARTITION_EOF:
                        break
                    raise BrokerError(f"{self._topic}[{partition}]: {problem}")
                try:
                    decision = Decision.model_validate_json(message.value() or b"")
                except ValidationError:  # not a ranker's: nothing to repeat
                    log.warning("ranker: %s[%d]@%d is not a decision; not repeated", self._topic,
                                partition, message.offset())  # fmt: skip
                    continue
                decisions[decision.decision_id] = decision
                if len(decisions) > self._tail:
                    del decisions[next(iter(decisions))]  # the oldest read
            log.info("ranker: %d decisions read back from %s[%d] to repeat if decided again",
                     len(decisions), self._topic, partition)  # fmt: skip
            return decisions
        finally:
            consumer.close()
