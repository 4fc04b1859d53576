"""The ranker's stateful step: routes each record to the part that owns its kind of work.

A valid_offers record: expire the customer's unanswered impressions, then decide. An
interaction: resolve it into labels, or dead-letter it. After either, the customer's book is
saved and the models are checkpointed when due. Only this step reads Quix's message context;
the parts it calls are given what they need, so each is tested without a stream.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from quixstreams import State, message_context

from models.evaluation import StreamMetrics
from models.tracking import RunTracker
from pipeline.catalogue.tables import GlobalTables
from pipeline.contracts.schemas import Decision, Interaction, ValidOffers
from pipeline.contracts.topics import RANKER
from pipeline.kafka.dead_letters import DeadLetterProducer, Origin, Parsed, dead_letter
from pipeline.next_best_offer.champion import ChampionFollower
from pipeline.next_best_offer.decider import Decider
from pipeline.next_best_offer.feedback import FeedbackLearner, InputPosition
from pipeline.next_best_offer.state import CustomerDecisions
from pipeline.settings import Settings

STAGE = RANKER


class Ranker:
    """The decider, the feedback learner and the models of one ranker instance, and the step
    that routes records to them."""

    def __init__(
        self,
        settings: Settings,
        tables: GlobalTables,
        dead_letters: DeadLetterProducer,
        checkpoint_path: Path,
        tracker: RunTracker | None = None,
    ) -> None:
        self._dead_letters = dead_letters
        self.metrics = StreamMetrics()
        self.models = ChampionFollower(settings, checkpoint_path, self.metrics, tracker)
        instance = f"{socket.gethostname()}-{os.getpid()}"  # which ranker decided
        self.decider = Decider(settings, tables, self.models, self.metrics, instance)
        self.learner = FeedbackLearner(tables, self.models, self.metrics)

    def __call__(
        self, parsed: Parsed, key: str, _timestamp: int, _headers: Any, state: State[str, Any]
    ) -> Decision | None:
        if parsed.dead is not None:
            self._dead_letters.send(parsed.dead)
            return None
        record = parsed.record
        if record is None:
            return None
        context = message_context()
        at = InputPosition(context.topic, context.partition, context.offset)
        book = CustomerDecisions(state)
        output: Decision | None = None
        if isinstance(record, ValidOffers):
            output = self.decide(book, record, at)
        elif isinstance(record, Interaction):
            reason = self.observe(book, record, at)
            if reason is not None:
                origin = Origin(context.topic, context.partition, context.offset, key)
                raw = record.model_dump_json()
                self._dead_letters.send(dead_letter(STAGE, origin, reason, raw))
        else:
            raise TypeError(f"the ranker reads valid_offers and interactions, not {record!r}")
        book.save()
        self.models.maybe_checkpoint()
        return output

    def decide(self, book: CustomerDecisions, valid: ValidOffers, at: InputPosition) -> Decision:
        """Expire what the event's time has passed, then decide."""
        self.learner.expire(book, valid.timestamp.timestamp(), at)
        return self.decider.decide(book, valid)

    def observe(
        self, book: CustomerDecisions, interaction: Interaction, at: InputPosition
    ) -> str | None:
        return self.learner.observe(book, interaction, at)
