"""Deciding: which valid offers to show this customer now, in which order, and why.

contact policy (per-channel daily limit, per-offer impression limit)
→ time value now (primary / secondary / irrelevant / negative; negative is never shown)
→ features → P(accept) → priority = P × value now × lever → exploration policy
→ the decision, with the top-k offers, kept in the customer's book for learning
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from features import Exposure, Moment
from models.contact_policy import ContactPolicy
from models.policies import make_policy
from models.ranker import Candidate, OnlineRanker
from models.time_value import Phase, TimeValueProfile, earned_now, value_now
from pipeline.catalogue.tables import GlobalTables
from pipeline.contracts.schemas import Decision, RankedOffer, ValidOffers, response_window_seconds
from pipeline.next_best_offer.models import ModelFollower
from pipeline.next_best_offer.state import CustomerDecisions, DecisionDetails, PendingOffer
from pipeline.settings import Settings


@dataclass(frozen=True)
class OfferTerms:
    """What deciding needs of one version of an offer, worked out once."""

    profile: TimeValueProfile
    max_impressions: int
    lever: float


@dataclass
class DecisionStats:
    decisions: int = 0
    suppressed: int = 0


def decision_id_of(valid: ValidOffers) -> str:
    """The id of the decision on `valid` (the same each time its event is decided)."""
    return f"d-{valid.event_id}"


class Decider:
    """Ranks a customer's valid offers with the champion; scores the challenger in shadow."""

    def __init__(
        self,
        settings: Settings,
        tables: GlobalTables,
        models: ModelFollower,
        instance: str,
    ) -> None:
        self._top_k = settings.top_k
        self._irrelevant_value_ratio = settings.irrelevant_value_ratio
        self._objective = settings.objective
        self._tables = tables
        self._models = models
        self._instance = instance
        self.policy = make_policy(settings.exploration, settings.seed, settings.epsilon)
        # the challenger is scored in shadow with the same kind of policy as the champion
        self.shadow_policy = make_policy(settings.exploration, settings.seed + 1, settings.epsilon)
        self.contact = ContactPolicy(
            default_max_impressions=settings.default_max_impressions,
            channel_daily_limit=settings.channel_daily_limit,
            fatigue_share=settings.fatigue_share,
        )
        self.stats = DecisionStats()
        self._terms: tuple[dict[str, Any] | None, dict[str, OfferTerms]] = (None, {})

    def decide(self, book: CustomerDecisions, valid: ValidOffers) -> Decision:
        now = valid.timestamp.timestamp()
        decision_id = decision_id_of(valid)
        model = self._models.model  # one model for the whole decision, whatever arrives meanwhile
        if not self.contact.channel_allowed(book.channel_shown(valid.channel), now):
            self.stats.suppressed += len(valid.candidates)
            return self._decision(valid, model, decision_id, [], "channel daily limit reached")
        candidates, phases, seen = self._candidates(valid, model, now)
        ranked = model.rank(candidates)
        order, propensities = self.policy.choose(model.ranking(ranked))
        top = order[: self._top_k]
        chosen = [ranked[i] for i in top]
        p_now = self._p_accept_now(model, ranked, seen)
        offers = [
            RankedOffer(
                offer_id=c.key,
                rank=rank,
                score=round(c.score, 6),
                p_accept=round(p_now[c.key], 6),
                value_now=round(c.value_now, 4),
                phase=phases[c.key],
                propensity=propensities[index],
            )
            for rank, (index, c) in enumerate(zip(top, chosen, strict=True), start=1)
        ]
        features = {c.key: seen[c.key].all_features() for c in chosen}  # learned from
        if chosen:
            shadow = self._shadow(candidates, chosen[0].key, propensities[top[0]])
            self._remember(book, valid, decision_id, offers, features, model, shadow)
        explanation = (
            self._explain(model, chosen[0], chosen[0].all_features(), phases)
            if chosen
            else "no offer worth showing"
        )
        best = self._best_by_expected_value(ranked, phases, p_now)
        return self._decision(valid, model, decision_id, offers, explanation, best)

    def _p_accept_now(
        self, model: OnlineRanker, ranked: list[Candidate], seen: dict[str, Candidate]
    ) -> dict[str, float]:
        """Each candidate's P(accept) in the phase it is in now: what it was ranked by, unless
        the objective read it as if in its primary period (`value-curve`)."""
        p_now = {c.key: c.p_accept for c in ranked}
        elsewhere = [seen[c.key] for c in ranked if seen[c.key] is not c]
        if elsewhere:  # scored once more, in the phase they are in
            p_now.update((c.key, c.p_accept) for c in model.rank(elsewhere))
        return p_now

    def _best_by_expected_value(
        self, ranked: list[Candidate], phases: dict[str, Phase], p_now: dict[str, float]
    ) -> str | None:
        """The candidate the model's own P(accept) makes worth the most, P(accept) × value ×
        lever with the interest phase counted once: what the objective's time weighting (and
        exploration) may have put lower or left out of the decision."""
        terms = self._offer_terms()

        def expected_value(candidate: Candidate) -> float:
            offer = terms[candidate.key]
            earned = earned_now(offer.profile, phases[candidate.key], "expected-value")
            return p_now[candidate.key] * earned * offer.lever

        return max(ranked, key=expected_value).key if ranked else None

    def repeat(self, book: CustomerDecisions, valid: ValidOffers, earlier: Decision) -> bool:
        """Keep `earlier`, the decision already emitted for this event, as if it were made now
        (after a crash, see `pipeline.next_best_offer.emitted`): its offers as they were, with
        their features computed again. False if an offer of it is no longer a candidate."""
        if not earlier.offers:
            return True
        model = self._models.model
        candidates, _, seen = self._candidates(valid, model, valid.timestamp.timestamp())
        if any(o.offer_id not in seen for o in earlier.offers):
            return False
        features = {o.offer_id: seen[o.offer_id].all_features() for o in earlier.offers}
        first = earlier.offers[0]
        shadow = self._shadow(candidates, first.offer_id, first.propensity)
        self._remember(book, valid, earlier.decision_id, earlier.offers, features, model, shadow,
                       decided_by=earlier.model_version)  # fmt: skip
        return True

    def _remember(
        self,
        book: CustomerDecisions,
        valid: ValidOffers,
        decision_id: str,
        offers: list[RankedOffer],
        features: dict[str, dict[str, float]],
        model: OnlineRanker,
        shadow: dict[str, float] | None,
        decided_by: str | None = None,
    ) -> None:
        """Keep a decision's offers in the customer's book, until each is answered or expires;
        `decided_by` names the model version that chose them, if not `model`."""
        now = valid.timestamp.timestamp()
        offers_now = self._tables.catalogue.offers
        details = DecisionDetails(
            offers={
                o.offer_id: PendingOffer(
                    features=features[o.offer_id],
                    p_accept=o.p_accept,
                    value_now=o.value_now,
                    propensity=o.propensity,
                    rank=o.rank,
                )
                for o in offers
            },
            first=offers[0].offer_id,
            customer=valid.customer_id,
            model=decided_by or model.version,
            feature_set=model.features.label,
            shadow=shadow,
            challenger=self._models.challenger_version,
        )
        due = now + min(response_window_seconds(offers_now.get(o.offer_id)) for o in offers)
        book.add(decision_id, now, due, details)

    def _shadow(
        self, candidates: list[Candidate], first: str, propensity: float
    ) -> dict[str, float] | None:
        """What the challenger would have done: its probability of putting `first` first, and
        its reward model, for the off-policy estimate once the outcome is known."""
        challenger = self._models.challenger
        if challenger is None:
            return None
        copies = [
            Candidate(c.key, c.features, c.value_now, c.lever, c.shared_features)
            for c in candidates
        ]
        ranked = challenger.rank(copies)
        _, probabilities = self.shadow_policy.choose(challenger.ranking(ranked))
        rewards = [c.p_accept * c.value_now for c in ranked]
        logged = next(i for i, c in enumerate(ranked) if c.key == first)
        return {
            "propensity": propensity,
            "target_probability": probabilities[logged],
            "target_value": sum(p * r for p, r in zip(probabilities, rewards, strict=True)),
            "predicted_reward": rewards[logged],
        }

    def _candidates(
        self, valid: ValidOffers, model: OnlineRanker, now: float
    ) -> tuple[list[Candidate], dict[str, Phase], dict[str, Candidate]]:
        """(the candidates as the objective ranks them, each one's phase, each one as it is
        now: with the phase it is in, what the model learns from). Under `value-curve` an offer
        outside its primary period is ranked with the features it would have in it, so that the
        value curve alone counts the phase; otherwise the two are the same objects."""
        moment = Moment(valid.event_type, valid.channel, valid.timestamp, valid.event_attributes)
        features = model.features.for_decision(valid.customer, moment)
        offers = self._tables.catalogue.offers
        terms_of = self._offer_terms()
        fatigue_share = self.contact.fatigue_share
        candidates, phases, seen = [], {}, {}
        for candidate in valid.candidates:
            offer_id, impressions = candidate["offer_id"], candidate["impressions"]
            terms = terms_of.get(offer_id)
            if terms is None or impressions >= terms.max_impressions:  # the contact policy's
                self.stats.suppressed += 1
                continue
            days = candidate["days_since_trigger"]
            unanswered = candidate["unanswered_impressions"]
            _, phase = value_now(terms.profile, days, unanswered, fatigue_share)
            value = earned_now(terms.profile, phase, self._objective)
            if value <= 0:  # past the point of negative impact it would hurt; at 0, earn nothing
                self.stats.suppressed += 1
                continue
            exposure = Exposure(days, phase, impressions, unanswered)
            shared, own = features.parts(offers[offer_id], exposure)
            now_seen = seen[offer_id] = Candidate(offer_id, own, value, terms.lever, shared)
            if self._objective == "value-curve" and phase != "primary":
                shared, own = features.parts(offers[offer_id], exposure._replace(phase="primary"))
                candidates.append(Candidate(offer_id, own, value, terms.lever, shared))
            else:
                candidates.append(now_seen)
            phases[offer_id] = phase
        return candidates, phases, seen

    def _offer_terms(self) -> dict[str, OfferTerms]:
        """Each offer's terms, worked out once per catalogue (which is replaced on any change)."""
        offers = self._tables.catalogue.offers
        if self._terms[0] is not offers:
            self._terms = (
                offers,
                {
                    offer_id: OfferTerms(
                        profile=TimeValueProfile.of(offer, self._irrelevant_value_ratio),
                        max_impressions=self.contact.max_impressions(offer),
                        lever=float(offer["business_lever"]),
                    )
                    for offer_id, offer in offers.items()
                },
            )
        return self._terms[1]

    def _explain(
        self,
        model: OnlineRanker,
        top: Candidate,
        features: dict[str, float],
        phases: dict[str, Phase],
    ) -> str:
        reasons = ", ".join(
            f"{name} {weight:+.2f}" for name, weight in model.contributions(features)
        )
        phase = phases[top.key]
        as_if_primary = self._objective == "value-curve" and phase != "primary"
        p_accept = "P(accept) in its primary period" if as_if_primary else "P(accept)"
        text = (
            f"{top.key}: {p_accept} {top.p_accept:.3f} × value now {top.value_now:.0f} "
            f"({phase} interest) × lever {top.lever:g}"
        )
        return f"{text}; largest contributions: {reasons}" if reasons else text

    def _decision(
        self,
        valid: ValidOffers,
        model: OnlineRanker,
        decision_id: str,
        offers: list[RankedOffer],
        explanation: str,
        best_by_expected_value: str | None = None,
    ) -> Decision:
        self.stats.decisions += 1
        return Decision(
            decision_id=decision_id,
            customer_id=valid.customer_id,
            event_id=valid.event_id,
            event_type=valid.event_type,
            timestamp=valid.timestamp,
            channel=valid.channel,
            offers=offers,
            model_version=model.version,
            registry_version=self._models.registry_version,
            challenger_version=self._models.challenger_version,
            instance=self._instance,
            policy=self.policy.name,
            feature_set=model.features.label,
            rule_versions=valid.rule_versions,
            explanation=explanation,
            best_by_expected_value=best_by_expected_value,
        )
