"""The ranker's stateful step: routes each record to the part that owns its kind of work.

A valid_offers record: resolve what the event's time has expired, then decide. An interaction:
resolve it into labels, or dead-letter it. Either returns the records to emit: the feedback of
each offer resolved, and the decision. After either, the customer's book is saved. Only this
step reads Quix's message context; the parts it calls are given what they need, so each is
tested without a stream.
"""

from __future__ import annotations

import functools
import os
import socket
import time
from typing import Any

from prometheus_client import Counter
from pydantic import BaseModel
from quixstreams import State, message_context

from pipeline.catalogue.tables import GlobalTables
from pipeline.contracts.schemas import (
    DeadLetterKind,
    Decision,
    Feedback,
    Interaction,
    ValidOffers,
)
from pipeline.contracts.topics import RANKER
from pipeline.kafka.dead_letters import DeadLetterProducer, Origin, Parsed, dead_letter
from pipeline.monitoring import metrics
from pipeline.next_best_offer.decider import Decider, decision_id_of
from pipeline.next_best_offer.emitted import EarlierDecisions
from pipeline.next_best_offer.feedback import FeedbackResolver, InputPosition
from pipeline.next_best_offer.models import ModelFollower
from pipeline.next_best_offer.silence import SilenceHorizon
from pipeline.next_best_offer.state import CustomerDecisions
from pipeline.settings import Settings

STAGE = RANKER
UNKNOWN_REFERENCE = DeadLetterKind.UNKNOWN_REFERENCE
Emitted = Decision | Feedback


class Ranker:
    """The decider, the feedback resolver and the models of one ranker instance, and the step
    that routes records to them."""

    def __init__(
        self,
        settings: Settings,
        tables: GlobalTables,
        dead_letters: DeadLetterProducer,
        models: ModelFollower | None = None,
        instance: str | None = None,
        emitted: EarlierDecisions | None = None,
    ) -> None:
        self._dead_letters = dead_letters
        self._emitted = emitted  # under at-least-once: what a restart repeats
        self.models = models or ModelFollower(settings)
        instance = instance or f"{socket.gethostname()}-{os.getpid()}"  # which ranker decided
        self.decider = Decider(settings, tables, self.models, instance)
        self.resolver = FeedbackResolver(tables, SilenceHorizon(settings.silence_quantile))

    def __call__(
        self, parsed: Parsed, key: str, timestamp: int, _headers: Any, state: State[str, Any]
    ) -> list[Emitted]:
        if parsed.dead is not None:
            self._dead_letters.send(parsed.dead)
            return []
        if parsed.record is None:
            return []
        context = message_context()
        at = InputPosition(context.topic, context.partition, context.offset)
        book = CustomerDecisions(state)
        emitted = self.handle(book, parsed.record, at, key)
        book.save()
        _measure(emitted, timestamp)
        return emitted

    def handle(
        self, book: CustomerDecisions, record: BaseModel, at: InputPosition, key: str
    ) -> list[Emitted]:
        """The records `record` makes the ranker emit, in order."""
        if isinstance(record, ValidOffers):
            feedback = self.resolver.expire(book, record.timestamp.timestamp())
            earlier = self._emitted_before(at, record)
            if earlier is not None and self.decider.repeat(book, record, earlier):
                return list(feedback)  # already emitted as it is: kept, not told again
            return [*feedback, self.decider.decide(book, record)]
        if isinstance(record, Interaction):
            resolution = self.resolver.observe(book, record)
            if resolution.refused is not None:
                origin = Origin(at.topic, at.partition, at.offset, key)
                raw = record.model_dump_json()
                refused = dead_letter(STAGE, origin, resolution.refused, raw, UNKNOWN_REFERENCE)
                self._dead_letters.send(refused)
            return list(resolution.feedback)
        raise TypeError(f"the ranker reads valid_offers and interactions, not {record!r}")

    def _emitted_before(self, at: InputPosition, valid: ValidOffers) -> Decision | None:
        """This event's decision if it was emitted before this process started (a crash)."""
        if self._emitted is None:
            return None
        return self._emitted.pop(at.partition, decision_id_of(valid))


def _measure(emitted: list[Emitted], timestamp_ms: int) -> None:
    """Count what the ranker emits (`pipeline.monitoring.metrics`); a decision's latency runs
    from its event's time on Kafka, which Valid Offers carries on to the valid offers."""
    for record in emitted:
        if isinstance(record, Feedback):
            metrics.LABELS_TOLD.labels(record.outcome).inc()
            continue
        phase = record.offers[0].phase if record.offers else "none"
        _decisions(phase, record.policy, record.registry_version or "unregistered").inc()
        metrics.DECISION_LATENCY.observe(max(0.0, time.time() - timestamp_ms / 1000))


@functools.lru_cache(maxsize=1024)
def _decisions(phase: str, policy: str, model_version: str) -> Counter:
    """`nbo_decisions_total`'s counter for these labels, looked up once (a look-up per decision
    cost more than the rest of its counting)."""
    return metrics.DECISIONS.labels(phase, policy, model_version)
