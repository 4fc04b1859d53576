"""The Next Best Offer μ-product: ranks valid offers and learns from the customers' reactions.

Sources: `valid_offers` and `interactions` (both keyed by customer id, read as one stream so a
customer's responses and decisions are processed in timestamp order) and the `offers` table.
Sink: `next_best_offers`; bad records go to `dead_letter`.

Per valid_offers record (one triggering event):
    expire unanswered impressions (negative labels, by event time)
    → contact policy (per-channel daily limit, per-offer impression limit)
    → time value now (primary / secondary / irrelevant / negative; negative is never shown)
    → features → P(accept) → priority = P × value now × lever → exploration policy
    → decision with the top-k offers, kept in the customer's state for learning
Per interaction carrying a decision id:
    impression → remember what was shown and when
    accept / convert → learn 1; dismiss → learn 0; click → neutral (wait for the outcome)
using the features stored at decision time: nothing is rebuilt.

Run it with `nbo run ranker`.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from quixstreams import Application, State, message_context

from features.offer_features import (
    FEATURE_SET,
    CustomerPart,
    DecisionContext,
    DecisionFeatures,
)
from models.contact_policy import ContactPolicy
from models.evaluation import StreamMetrics
from models.off_policy import LoggedRound, RunningEstimate
from models.policies import make_policy
from models.ranker import Candidate, OnlineRanker
from models.registry import CHALLENGER, CHAMPION
from models.store import Checkpoint, LabelJournal, load_checkpoint, save_checkpoint
from models.time_value import Phase, TimeValueProfile, value_now
from models.tracking import RunTracker
from pipeline.catalogue import GlobalTables
from pipeline.dead_letters import DeadLetterProducer, Origin, dead_letter
from pipeline.quix import make_application, run_watched, state_dir
from pipeline.ranker_state import CustomerDecisions
from pipeline.schemas import Interaction, ValidOffers
from pipeline.settings import Settings
from pipeline.valid_offers import Parsed, parse, processing_error_to_dead_letter

log = logging.getLogger(__name__)

STAGE = "ranker"
SOURCES: dict[str, type[BaseModel]] = {"valid_offers": ValidOffers, "interactions": Interaction}
POSITIVE = frozenset({"accept", "convert"})
NEGATIVE = frozenset({"dismiss"})


@dataclass(frozen=True)
class OfferTerms:
    """What deciding needs of one version of an offer, worked out once."""

    category: str
    profile: TimeValueProfile
    max_impressions: int
    lever: float


@dataclass
class RankerStats:
    decisions: int = 0
    learned: int = 0
    positives: int = 0
    expired: int = 0
    suppressed: int = 0


class Ranker:
    """The stateful step. Owns the model, the policies and the checkpoint of the model."""

    def __init__(
        self,
        settings: Settings,
        tables: GlobalTables,
        dead_letters: DeadLetterProducer,
        checkpoint_path: Path,
        tracker: RunTracker | None = None,
    ) -> None:
        self._settings = settings
        self._tracker = tracker
        self._tables = tables
        self._dead_letters = dead_letters
        self._checkpoint_path = checkpoint_path
        checkpoint = load_checkpoint(checkpoint_path)
        if checkpoint is None:
            checkpoint = Checkpoint(
                OnlineRanker(settings.ranker_model, settings.learning_rate, settings.seed)
            )
        self.checkpoint = checkpoint
        self._journal = LabelJournal(checkpoint_path.with_name("labels.jsonl"))
        self._relearn_journal()
        self.policy = make_policy(settings.exploration, settings.seed, settings.epsilon)
        # the challenger is scored in shadow with the same kind of policy as the champion
        self.shadow_policy = make_policy(settings.exploration, settings.seed + 1, settings.epsilon)
        self.challenger: OnlineRanker | None = None
        self.challenger_version: str | None = None
        self.metrics = StreamMetrics()
        self.challenger_estimate = RunningEstimate()
        self.contact = ContactPolicy(
            default_max_impressions=settings.default_max_impressions,
            channel_daily_limit=settings.channel_daily_limit,
            fatigue_share=settings.fatigue_share,
        )
        self.stats = RankerStats()
        self.instance = f"{socket.gethostname()}-{os.getpid()}"  # which ranker decided
        self._saved_at = time.monotonic()
        self._terms: tuple[dict[str, Any] | None, dict[str, OfferTerms]] = (None, {})
        self.follow_registry()

    @property
    def model(self) -> OnlineRanker:
        return self.checkpoint.ranker

    def _relearn_journal(self) -> None:
        """Learn the labels a killed predecessor learned after its last checkpoint."""
        learned = self.checkpoint.learned_offsets
        relearned = 0
        for position, offset, features, accepted in self._journal.unlearned(learned):
            self.model.learn_one(features, accepted)
            learned[position] = max(offset, learned.get(position, -1))
            relearned += 1
        if relearned:
            log.info("%s: learned %d labels again from the journal", STAGE, relearned)
            self.save()

    def follow_registry(self) -> None:
        """Switch to a newly promoted champion, and to a new challenger, without a restart."""
        if self._tracker is None:
            return
        aliases = self._tracker.aliases()
        champion, challenger = aliases.get(CHAMPION), aliases.get(CHALLENGER)
        if champion is not None and champion != self.checkpoint.registry_version:
            loaded = self._tracker.load(champion)
            if loaded is not None:
                log.info("%s: champion is now version %s (%s)", STAGE, champion, loaded.version)
                self.checkpoint.ranker, self.checkpoint.registry_version = loaded, champion
                self.save()  # the journal's labels from here on belong to the new champion
        if challenger == champion:
            challenger = None
        if challenger != self.challenger_version:
            self.challenger = self._tracker.load(challenger) if challenger else None
            self.challenger_version = challenger if self.challenger else None
            self.challenger_estimate = RunningEstimate()

    def __call__(
        self, parsed: Parsed, key: str, _timestamp: int, _headers: Any, state: State[str, Any]
    ) -> dict[str, Any] | None:
        if parsed.dead is not None:
            self._dead_letters.send(parsed.dead)
            return None
        record = parsed.record
        if record is None:
            return None
        book = CustomerDecisions(state)
        if isinstance(record, ValidOffers):
            output: dict[str, Any] | None = self.decide(book, record)
        else:
            assert isinstance(record, Interaction)
            self.observe(book, record, key)
            output = None
        book.save()
        self.maybe_checkpoint()
        return output

    # -- deciding ------------------------------------------------------------------------

    def decide(self, book: CustomerDecisions, valid: ValidOffers) -> dict[str, Any]:
        now = valid.timestamp.timestamp()
        self._expire(book, now)
        decision_id = f"d-{valid.event_id}"
        if not self.contact.channel_allowed(book.channel_shown(valid.channel), now):
            self.stats.suppressed += len(valid.candidates)
            return self._record(valid, decision_id, [], "channel daily limit reached")
        context = DecisionContext.at(valid.timestamp, valid.channel, valid.event_type)
        candidates, phases = self._candidates(valid, context, now)
        ranked = self.model.rank(candidates)
        order, propensities = self.policy.choose(
            [c.score for c in ranked], [c.p_accept for c in ranked]
        )
        top = order[: self._settings.top_k]
        chosen = [ranked[i] for i in top]
        offers = [
            {
                "offer_id": c.key,
                "rank": rank,
                "score": round(c.score, 6),
                "p_accept": round(c.p_accept, 6),
                "value_now": round(c.value_now, 4),
                "phase": phases[c.key],
                "propensity": propensities[index],
            }
            for rank, (index, c) in enumerate(zip(top, chosen, strict=True), start=1)
        ]
        features = {c.key: c.all_features() for c in chosen}  # learned from, and explained
        if chosen:
            book.add(
                decision_id,
                now,
                now + min(self._response_window(c.key) for c in chosen),
                {c.key: {"x": features[c.key], "p": c.p_accept, "v": c.value_now} for c in chosen},
                first=chosen[0].key,
                shadow=self._shadow(candidates, chosen[0].key, propensities[top[0]]),
            )
        self.metrics.decided([phases[c.key] for c in chosen])
        explanation = (
            self._explain(chosen[0], features[chosen[0].key], phases)
            if chosen
            else "no offer worth showing"
        )
        return self._record(valid, decision_id, offers, explanation)

    def _shadow(
        self, candidates: list[Candidate], first: str, propensity: float
    ) -> dict[str, float] | None:
        """What the challenger would have done: its probability of putting `first` first, and
        its reward model, for the off-policy estimate once the outcome is known."""
        if self.challenger is None:
            return None
        copies = [
            Candidate(c.key, c.features, c.value_now, c.lever, c.shared_features)
            for c in candidates
        ]
        ranked = self.challenger.rank(copies)
        _, probabilities = self.shadow_policy.choose(
            [c.score for c in ranked], [c.p_accept for c in ranked]
        )
        rewards = [c.p_accept * c.value_now for c in ranked]
        logged = next(i for i, c in enumerate(ranked) if c.key == first)
        return {
            "propensity": propensity,
            "target_probability": probabilities[logged],
            "target_value": sum(p * r for p, r in zip(probabilities, rewards, strict=True)),
            "predicted_reward": rewards[logged],
        }

    def _candidates(
        self, valid: ValidOffers, context: DecisionContext, now: float
    ) -> tuple[list[Candidate], dict[str, Phase]]:
        features = DecisionFeatures(CustomerPart.of(valid.customer), context)
        terms_of = self._offer_terms()
        fatigue_share = self.contact.fatigue_share
        candidates, phases = [], {}
        for candidate in valid.candidates:
            offer_id, impressions = candidate["offer_id"], candidate["impressions"]
            terms = terms_of.get(offer_id)
            if terms is None or impressions >= terms.max_impressions:  # the contact policy's
                self.stats.suppressed += 1
                continue
            days = candidate["days_since_trigger"]
            unanswered = candidate["unanswered_impressions"]
            value, phase = value_now(terms.profile, days, unanswered, fatigue_share)
            if value < 0:  # past the point of negative impact: showing it would hurt
                self.stats.suppressed += 1
                continue
            shared, own = features.parts(terms.category, phase, days, impressions, unanswered)
            candidates.append(Candidate(offer_id, own, value, terms.lever, shared))
            phases[offer_id] = phase
        return candidates, phases

    def _offer_terms(self) -> dict[str, OfferTerms]:
        """Each offer's terms, worked out once per catalogue (which is replaced on any change)."""
        offers = self._tables.catalogue.offers
        if self._terms[0] is not offers:
            self._terms = (
                offers,
                {
                    offer_id: OfferTerms(
                        category=offer["category"],
                        profile=TimeValueProfile.of(offer),
                        max_impressions=self.contact.max_impressions(offer),
                        lever=float(offer["business_lever"]),
                    )
                    for offer_id, offer in offers.items()
                },
            )
        return self._terms[1]

    def _explain(self, top: Candidate, features: dict[str, float], phases: dict[str, Phase]) -> str:
        reasons = ", ".join(
            f"{name} {weight:+.2f}" for name, weight in self.model.contributions(features)
        )
        text = (
            f"{top.key}: P(accept) {top.p_accept:.3f} × value now {top.value_now:.0f} "
            f"({phases[top.key]} interest) × lever {top.lever:g}"
        )
        return f"{text}; largest contributions: {reasons}" if reasons else text

    def _record(
        self, valid: ValidOffers, decision_id: str, offers: list[dict[str, Any]], explanation: str
    ) -> dict[str, Any]:
        self.stats.decisions += 1
        return {
            "schema_version": 1,
            "decision_id": decision_id,
            "customer_id": valid.customer_id,
            "event_id": valid.event_id,
            "event_type": valid.event_type,
            "timestamp": valid.timestamp.isoformat(),
            "channel": valid.channel,
            "offers": offers,
            "model_version": self.model.version,
            "registry_version": self.checkpoint.registry_version,
            "challenger_version": self.challenger_version,
            "instance": self.instance,
            "policy": self.policy.name,
            "feature_set": FEATURE_SET,
            "rule_versions": valid.rule_versions,
            "explanation": explanation,
        }

    # -- learning ------------------------------------------------------------------------

    def observe(self, book: CustomerDecisions, interaction: Interaction, key: str) -> None:
        """Each offer of a decision is resolved on its own: a channel may show several."""
        now = interaction.timestamp.timestamp()
        self._expire(book, now)
        decision = book.pending.get(interaction.decision_id)
        if decision is None or interaction.offer_id not in decision["shown"]:
            what = "decision" if decision is None else f"offer {interaction.offer_id} of decision"
            reason = (
                f"interaction {interaction.interaction_id}: {what} {interaction.decision_id} "
                "is unknown or already resolved"
            )
            self._dead_letters.send(
                dead_letter(
                    STAGE, Origin.of_current_message(key), reason, interaction.model_dump_json()
                )
            )
            return
        if interaction.outcome == "impression":
            book.shown(interaction.decision_id, interaction.offer_id, now, interaction.channel)
        elif interaction.outcome in POSITIVE or interaction.outcome in NEGATIVE:
            accepted = interaction.outcome in POSITIVE
            self._label(book, interaction.decision_id, interaction.offer_id, accepted)
            book.resolve(interaction.decision_id, interaction.offer_id)
        # a click is neutral: the offer stays open for its outcome

    def _label(
        self, book: CustomerDecisions, decision_id: str, offer_id: str, accepted: bool
    ) -> None:
        """Measure, then learn, one shown offer's label (once, even across a restart)."""
        context = message_context()
        position = f"{context.topic}/{context.partition}"
        learned = self.checkpoint.learned_offsets
        if context.offset <= learned.get(position, -1):
            return  # learned before the restart this checkpoint comes from
        decision = book.details(decision_id)
        offer = decision["offers"][offer_id]
        self.metrics.labelled(offer["p"], accepted)
        if offer_id == decision["first"]:
            self._rewarded(decision, offer["v"] if accepted else 0.0)
        self.model.learn_one(offer["x"], accepted)
        self._journal.append(position, context.offset, offer["x"], accepted)
        if self.challenger is not None:
            self.challenger.learn_one(offer["x"], accepted)
        learned[position] = context.offset
        self.stats.learned += 1
        self.stats.positives += int(accepted)

    def _rewarded(self, decision: dict[str, Any], reward: float) -> None:
        self.metrics.rewarded(reward)
        shadow = decision.get("shadow")
        if shadow is not None and self.challenger is not None:
            self.challenger_estimate.update(LoggedRound(reward=reward, matched=False, **shadow))

    def _expire(self, book: CustomerDecisions, now: float) -> None:
        """A shown offer with no response within its window becomes a negative label; an
        offer not shown within its window is forgotten (nothing to learn from it)."""
        for decision_id, decision in list(book.pending.items()):
            if now <= decision["due"]:  # none of its offers can have expired yet
                continue
            next_due = None
            for offer_id, shown_at in list(decision["shown"].items()):
                since = decision["at"] if shown_at is None else shown_at
                expires = since + self._response_window(offer_id)
                if now <= expires:
                    next_due = expires if next_due is None else min(next_due, expires)
                    continue
                if shown_at is not None:
                    self._label(book, decision_id, offer_id, False)
                    self.stats.expired += 1
                book.resolve(decision_id, offer_id)
            if next_due is not None:
                decision["due"] = next_due

    def _response_window(self, offer_id: str) -> float:
        """Seconds a shown offer waits for a response (72 h for an offer no longer listed)."""
        offer = self._tables.catalogue.offers.get(offer_id)
        return (offer["response_window_hours"] if offer else 72.0) * 3600

    # -- persistence ---------------------------------------------------------------------

    def maybe_checkpoint(self) -> None:
        if time.monotonic() - self._saved_at >= self._settings.model_checkpoint_interval:
            self.save()
            self.log_metrics()
        self.follow_registry()

    def log_metrics(self) -> None:
        if self._tracker is None:
            return
        values = self.metrics.snapshot()
        challenger = self.challenger_estimate.values()
        if self.challenger is not None and challenger["rounds"]:
            values.update({f"challenger_{name}": v for name, v in challenger.items()})
        self._tracker.log_metrics(values, step=self.metrics.decisions)

    def finish(self) -> None:
        """On shutdown: checkpoint, then log the final metrics and register the model."""
        self.save()
        if self._tracker is None:
            return
        self.log_metrics()
        registered = self._tracker.finish(self.model, self.metrics)
        if registered is None:
            return
        version, champion = registered
        log.info("%s: model %s registered as version %s", STAGE, self.model.version, version)
        if champion:  # a restart resumes this checkpoint rather than reloading the same model
            self.checkpoint.registry_version = version
            self.save()

    def save(self) -> None:
        save_checkpoint(self._checkpoint_path, self.checkpoint)
        self._journal.clear()
        self._saved_at = time.monotonic()


def checkpoint_path(settings: Settings, bootstrap: str) -> Path:
    return state_dir(settings, bootstrap, STAGE) / "model.pkl"


def build(
    settings: Settings,
    bootstrap: str,
    tables: GlobalTables,
    dead_letters: DeadLetterProducer,
    tracker: RunTracker | None = None,
) -> tuple[Application, Ranker]:
    """Wire the μ-product: every stage is named here, in order."""
    app = make_application(
        settings,
        bootstrap,
        STAGE,
        on_processing_error=processing_error_to_dead_letter(dead_letters, STAGE),
    )
    topics = {settings.topic_name(name): name for name in SOURCES}
    sources = [
        app.topic(name, key_deserializer="str", value_deserializer="bytes") for name in topics
    ]
    next_best_offers = app.topic(
        settings.topic_name("next_best_offers"), key_serializer="str", value_serializer="json"
    )
    ranker = Ranker(
        settings, tables, dead_letters, checkpoint_path(settings, bootstrap), tracker=tracker
    )

    sdf = app.dataframe(sources[0]).concat(app.dataframe(sources[1]))
    sdf = sdf.apply(
        lambda raw, key, _ts, _headers: parse(raw, key, topics, SOURCES, STAGE), metadata=True
    )
    sdf = sdf.apply(ranker, stateful=True, metadata=True)
    sdf = sdf.filter(lambda output: output is not None)
    sdf.to_topic(next_best_offers)
    return app, ranker


def start_tracking(settings: Settings) -> RunTracker | None:
    """The ranker's MLflow run, with the parameters a reviewer compares runs by."""
    if not settings.mlflow_tracking:
        return None
    return RunTracker(
        settings.mlflow_tracking_uri,
        settings.mlflow_artifacts_dir,
        run_name=f"ranker-{time.strftime('%Y%m%d-%H%M%S')}",
        params={
            "model": settings.ranker_model,
            "learning_rate": settings.learning_rate,
            "exploration": settings.exploration,
            "epsilon": settings.epsilon,
            "top_k": settings.top_k,
            "channel_daily_limit": settings.channel_daily_limit,
            "default_max_impressions": settings.default_max_impressions,
            "fatigue_share": settings.fatigue_share,
            "feature_set": FEATURE_SET,
            "seed": settings.seed,
        },
        poll_interval=settings.model_poll_interval,
    )


def run(settings: Settings, bootstrap: str) -> None:
    """Load the offers table and the last model checkpoint, then decide and learn until stopped."""
    tables = GlobalTables(settings, bootstrap, tables=("offers",))
    tables.start(timeout=settings.broker_start_timeout)
    dead_letters = DeadLetterProducer(settings, bootstrap)
    app, ranker = build(settings, bootstrap, tables, dead_letters, start_tracking(settings))
    log.info("%s: model %s, policy %s", STAGE, ranker.model.version, ranker.policy.name)
    try:
        run_watched(app, settings, bootstrap, STAGE, SOURCES)
    finally:
        ranker.finish()
        dead_letters.flush()
        log.info(
            "%s: stopped; model %s checkpointed (%s)", STAGE, ranker.model.version, ranker.stats
        )
        tables.stop()
