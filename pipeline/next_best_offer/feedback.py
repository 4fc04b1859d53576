"""Labels from the customers' reactions, and from their silence, learned once each.

Each offer of a decision is resolved on its own (a channel may show several): accept and
convert are positive, dismiss negative, a click neutral (the offer waits for its outcome), and a
shown offer with no response within its response window negative, by event time. The label is
scored against the P(accept) of decision time (progressive validation), then learned from the
features stored at decision time: nothing is rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.evaluation import StreamMetrics
from pipeline.catalogue.tables import GlobalTables
from pipeline.contracts.schemas import (
    NEGATIVE_OUTCOMES,
    POSITIVE_OUTCOMES,
    Interaction,
    response_window_seconds,
)
from pipeline.next_best_offer.champion import ChampionFollower
from pipeline.next_best_offer.state import CustomerDecisions


@dataclass(frozen=True)
class InputPosition:
    """Where the record being processed sits in its input: labels are learned once per offset."""

    topic: str
    partition: int
    offset: int

    @property
    def partition_name(self) -> str:
        return f"{self.topic}/{self.partition}"


@dataclass
class FeedbackStats:
    learned: int = 0
    positives: int = 0
    expired: int = 0


class FeedbackLearner:
    """Turns interactions and expired impressions into labels for the models."""

    def __init__(
        self, tables: GlobalTables, models: ChampionFollower, metrics: StreamMetrics
    ) -> None:
        self._tables = tables
        self._models = models
        self._metrics = metrics
        self.stats = FeedbackStats()

    def observe(
        self, book: CustomerDecisions, interaction: Interaction, at: InputPosition
    ) -> str | None:
        """Resolve what `interaction` says; the reason it cannot be used, if it cannot."""
        now = interaction.timestamp.timestamp()
        self.expire(book, now, at)
        decision = book.pending.get(interaction.decision_id)
        if decision is None or interaction.offer_id not in decision["shown"]:
            what = "decision" if decision is None else f"offer {interaction.offer_id} of decision"
            return (
                f"interaction {interaction.interaction_id}: {what} {interaction.decision_id} "
                "is unknown or already resolved"
            )
        if interaction.outcome == "impression":
            book.shown(interaction.decision_id, interaction.offer_id, now, interaction.channel)
        elif interaction.outcome in POSITIVE_OUTCOMES or interaction.outcome in NEGATIVE_OUTCOMES:
            accepted = interaction.outcome in POSITIVE_OUTCOMES
            self._label(book, interaction.decision_id, interaction.offer_id, accepted, at)
            book.resolve(interaction.decision_id, interaction.offer_id)
        # a click is neutral: the offer stays open for its outcome
        return None

    def expire(self, book: CustomerDecisions, now: float, at: InputPosition) -> None:
        """A shown offer with no response within its window becomes a negative label; an
        offer not shown within its window is forgotten (nothing to learn from it)."""
        offers = self._tables.catalogue.offers
        for decision_id, decision in list(book.pending.items()):
            if now <= decision["due"]:  # none of its offers can have expired yet
                continue
            next_due = None
            for offer_id, shown_at in list(decision["shown"].items()):
                since = decision["at"] if shown_at is None else shown_at
                expires = since + response_window_seconds(offers.get(offer_id))
                if now <= expires:
                    next_due = expires if next_due is None else min(next_due, expires)
                    continue
                if shown_at is not None:
                    self._label(book, decision_id, offer_id, False, at)
                    self.stats.expired += 1
                book.resolve(decision_id, offer_id)
            if next_due is not None:
                decision["due"] = next_due

    def _label(
        self,
        book: CustomerDecisions,
        decision_id: str,
        offer_id: str,
        accepted: bool,
        at: InputPosition,
    ) -> None:
        """Measure, then learn, one shown offer's label (once, even across a restart)."""
        if self._models.learned_before(at.partition_name, at.offset):
            return  # learned before the restart this checkpoint comes from
        decision: dict[str, Any] = book.details(decision_id)
        offer = decision["offers"][offer_id]
        self._metrics.labelled(offer["p"], accepted)
        if offer_id == decision["first"]:
            reward = offer["v"] if accepted else 0.0
            self._metrics.rewarded(reward)
            self._models.rewarded_in_shadow(decision.get("shadow"), reward)
        self._models.learn(at.partition_name, at.offset, offer["x"], accepted)
        self.stats.learned += 1
        self.stats.positives += int(accepted)
