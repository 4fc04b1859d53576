"""Labels from the customers' reactions, and from their silence, told as `feedback` records.

Each offer of a decision is resolved on its own (a channel may show several): accept and
convert are positive, dismiss negative, a click neutral (the offer waits for its outcome), and a
shown offer with no response within its response window negative, by event time. Each resolved
offer is emitted as a `Feedback` record with the features, P(accept) and propensity stored at
decision time (nothing is rebuilt); the learner μ-product learns from them, once each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from pipeline.catalogue.tables import GlobalTables
from pipeline.contracts.schemas import (
    NEGATIVE_OUTCOMES,
    POSITIVE_OUTCOMES,
    Feedback,
    FeedbackOutcome,
    Interaction,
    response_window_seconds,
)
from pipeline.next_best_offer.state import CustomerDecisions


@dataclass(frozen=True)
class InputPosition:
    """Where the record being processed sits in its input."""

    topic: str
    partition: int
    offset: int

    @property
    def partition_name(self) -> str:
        return f"{self.topic}/{self.partition}"


@dataclass
class Resolution:
    """What one interaction resolved: feedback records, or why it could not be used."""

    feedback: list[Feedback] = field(default_factory=list)
    refused: str | None = None


@dataclass
class FeedbackStats:
    resolved: int = 0
    positives: int = 0
    expired: int = 0


class FeedbackResolver:
    """Turns interactions and expired impressions into labels, told as feedback."""

    def __init__(self, tables: GlobalTables) -> None:
        self._tables = tables
        self.stats = FeedbackStats()

    def observe(self, book: CustomerDecisions, interaction: Interaction) -> Resolution:
        """Resolve what `interaction` says (after what its time has expired)."""
        now = interaction.timestamp.timestamp()
        feedback = self.expire(book, now)
        decision = book.pending.get(interaction.decision_id)
        if decision is None or interaction.offer_id not in decision["shown"]:
            what = "decision" if decision is None else f"offer {interaction.offer_id} of decision"
            reason = (
                f"interaction {interaction.interaction_id}: {what} {interaction.decision_id} "
                "is unknown or already resolved"
            )
            return Resolution(feedback, refused=reason)
        outcome = interaction.outcome
        if outcome == "impression":
            book.shown(interaction.decision_id, interaction.offer_id, now, interaction.channel)
        elif outcome in POSITIVE_OUTCOMES or outcome in NEGATIVE_OUTCOMES:
            feedback.append(
                self._resolve(
                    book,
                    interaction.decision_id,
                    interaction.offer_id,
                    FeedbackOutcome(outcome),
                    now,
                )
            )
        # a click is neutral: the offer stays open for its outcome
        return Resolution(feedback)

    def expire(self, book: CustomerDecisions, now: float) -> list[Feedback]:
        """A shown offer with no response within its window becomes a negative label; an
        offer not shown within its window is forgotten (nothing to learn from it)."""
        offers = self._tables.catalogue.offers
        feedback = []
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
                if shown_at is None:
                    book.resolve(decision_id, offer_id)
                    continue
                feedback.append(
                    self._resolve(book, decision_id, offer_id, FeedbackOutcome.NO_RESPONSE, now)
                )
                self.stats.expired += 1
            if next_due is not None:  # an offer is still open, so the decision is pending
                decision["due"] = next_due
        return feedback

    def _resolve(
        self,
        book: CustomerDecisions,
        decision_id: str,
        offer_id: str,
        outcome: FeedbackOutcome,
        now: float,
    ) -> Feedback:
        """Tell one shown offer's label."""
        decision = book.details(decision_id)
        decided_at = book.pending[decision_id]["at"]
        offer = decision.offers[offer_id]
        accepted = outcome in POSITIVE_OUTCOMES
        reward = offer.value_now if accepted else 0.0
        first = offer_id == decision.first
        self.stats.resolved += 1
        self.stats.positives += int(accepted)
        book.resolve(decision_id, offer_id)
        return Feedback(
            decision_id=decision_id,
            customer_id=decision.customer,
            offer_id=offer_id,
            rank=offer.rank,
            outcome=outcome,
            label=accepted,
            reward=reward,
            features=offer.features,
            feature_set=decision.feature_set,
            p_accept=offer.p_accept,
            value_now=offer.value_now,
            propensity=offer.propensity,
            model_version=decision.model,
            challenger=decision.shadow if first else None,
            challenger_version=decision.challenger if first else None,
            decided_at=datetime.fromtimestamp(decided_at, UTC),
            resolved_at=datetime.fromtimestamp(now, UTC),
        )
