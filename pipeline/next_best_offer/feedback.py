"""Labels from the customers' reactions, and from their silence, told as `feedback` records.

Each offer of a decision is resolved on its own (a channel may show several): accept and
convert are positive, dismiss negative, a click neutral (the offer waits for its outcome), and a
shown offer with no response negative, by event time, once answers that late are rare
(`SilenceHorizon`), at the latest when its response window ends. An accept that comes after its
silence was told, within the window, is told as well, marked late. Each resolved offer is
emitted as a `Feedback` record with the features, P(accept) and propensity stored at decision
time (nothing is rebuilt); the learner μ-product learns from them, once each.
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
from pipeline.next_best_offer.silence import SilenceHorizon
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
    expired: int = 0  # silences told
    late: int = 0  # accepts told after their silence


class FeedbackResolver:
    """Turns interactions and silent impressions into labels, told as feedback."""

    def __init__(self, tables: GlobalTables, horizon: SilenceHorizon | None = None) -> None:
        self._tables = tables
        self.horizon = horizon or SilenceHorizon()
        self.stats = FeedbackStats()

    def observe(self, book: CustomerDecisions, interaction: Interaction) -> Resolution:
        """Resolve what `interaction` says (after what its time has expired)."""
        now = interaction.timestamp.timestamp()
        feedback = self.expire(book, now)
        decision_id, offer_id = interaction.decision_id, interaction.offer_id
        decision = book.pending.get(decision_id)
        if decision is None or offer_id not in decision["shown"] | book.silent(decision_id):
            what = "decision" if decision is None else f"offer {offer_id} of decision"
            reason = (
                f"interaction {interaction.interaction_id}: {what} {decision_id} "
                "is unknown or already resolved"
            )
            return Resolution(feedback, refused=reason)
        outcome = interaction.outcome
        answered = outcome in POSITIVE_OUTCOMES or outcome in NEGATIVE_OUTCOMES
        silent_since = book.silent(decision_id).get(offer_id)
        if silent_since is not None:  # its silence was told: only an accept says more
            if answered:
                self.horizon.answered(now - silent_since)
                if outcome in POSITIVE_OUTCOMES:
                    feedback.append(self._told(book, decision_id, offer_id, outcome, now, True))
                book.resolve(decision_id, offer_id)
            return Resolution(feedback)
        if outcome == "impression":
            book.shown(decision_id, offer_id, now, interaction.channel)
            window = response_window_seconds(self._tables.catalogue.offers.get(offer_id))
            decision["due"] = min(decision["due"], now + self.horizon.after(window))
        elif answered:
            shown_at = decision["shown"][offer_id]
            if shown_at is not None:
                self.horizon.answered(now - shown_at)
            feedback.append(self._told(book, decision_id, offer_id, outcome, now))
            book.resolve(decision_id, offer_id)
        # a click is neutral: the offer stays open for its outcome
        return Resolution(feedback)

    def expire(self, book: CustomerDecisions, now: float) -> list[Feedback]:
        """A shown offer with no response past its silence horizon becomes a negative label; an
        offer not shown within its response window is forgotten (nothing to learn from it), and
        so is a silent one whose window has ended without a late answer."""
        offers = self._tables.catalogue.offers
        feedback = []
        for decision_id, decision in list(book.pending.items()):
            if now <= decision["due"]:  # none of its offers can have expired yet
                continue
            dues = []  # when each offer still open next needs a look
            for offer_id, shown_at in list(decision["shown"].items()):
                window = response_window_seconds(offers.get(offer_id))
                if shown_at is None:  # not shown: forgotten when its window ends
                    if now > decision["at"] + window:
                        book.resolve(decision_id, offer_id)
                    else:
                        dues.append(decision["at"] + window)
                    continue
                silence = shown_at + self.horizon.after(window)
                if now <= silence:
                    dues.append(silence)
                    continue
                outcome = FeedbackOutcome.NO_RESPONSE
                feedback.append(self._told(book, decision_id, offer_id, outcome, now))
                self.stats.expired += 1
                if now <= shown_at + window:  # a late accept may still come
                    book.silenced(decision_id, offer_id)
                else:
                    book.resolve(decision_id, offer_id)
            if decision_id not in book.pending:  # every offer resolved: the decision is gone
                continue
            for offer_id, shown_at in list(book.silent(decision_id).items()):
                closes = shown_at + response_window_seconds(offers.get(offer_id))
                if now > closes:
                    book.resolve(decision_id, offer_id)
                else:
                    dues.append(closes)
            if dues:  # an offer is still open, so the decision is pending
                decision["due"] = min(dues)
        return feedback

    def _told(
        self,
        book: CustomerDecisions,
        decision_id: str,
        offer_id: str,
        outcome: FeedbackOutcome | str,
        now: float,
        late: bool = False,
    ) -> Feedback:
        """One shown offer's label, as a feedback record."""
        outcome = FeedbackOutcome(outcome)
        decision = book.details(decision_id)
        decided_at = book.pending[decision_id]["at"]
        offer = decision.offers[offer_id]
        accepted = outcome in POSITIVE_OUTCOMES
        reward = offer.value_now if accepted else 0.0
        # the challenger's off-policy estimate counts each decision once, at its first label
        shadow = offer_id == decision.first and not late
        self.stats.resolved += 1
        self.stats.positives += int(accepted)
        self.stats.late += int(late)
        return Feedback(
            decision_id=decision_id,
            customer_id=decision.customer,
            offer_id=offer_id,
            rank=offer.rank,
            outcome=outcome,
            label=accepted,
            reward=reward,
            late=late,
            features=offer.features,
            feature_set=decision.feature_set,
            p_accept=offer.p_accept,
            value_now=offer.value_now,
            propensity=offer.propensity,
            model_version=decision.model,
            group=decision.group,
            challenger=decision.shadow if shadow else None,
            challenger_version=decision.challenger if shadow else None,
            decided_at=datetime.fromtimestamp(decided_at, UTC),
            resolved_at=datetime.fromtimestamp(now, UTC),
        )
