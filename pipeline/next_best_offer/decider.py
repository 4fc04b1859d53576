"""Deciding: which valid offers to show this customer now, in which order, and why.

A decision is a short pipeline of named steps, each readable alone:

contact policy and time value (`offers_now`: negative is never shown)
→ features and one scoring pass (`scoring.score`) → the objective's order
→ exploration (the policy draws the first offer; for a customer of the control group, the
group's baseline chooses instead: `control`) → the decision, with the top-k offers, kept in the
customer's book for learning, and the challenger scored in shadow (`shadow`).
"""

from __future__ import annotations

from dataclasses import dataclass

from features import Moment
from models.contact_policy import ContactPolicy
from models.policies import make_policy
from models.ranker import OnlineRanker
from pipeline.catalogue.tables import GlobalTables
from pipeline.contracts.schemas import Decision, RankedOffer, ValidOffers, response_window_seconds
from pipeline.next_best_offer.control import Choosers, ControlGroups, Group
from pipeline.next_best_offer.models import ModelFollower
from pipeline.next_best_offer.offers_now import OffersNow, Showable
from pipeline.next_best_offer.scoring import (
    Scoring,
    best_by_expected_value,
    explain,
    ranked_offers,
    score,
)
from pipeline.next_best_offer.shadow import Shadow
from pipeline.next_best_offer.state import CustomerDecisions, DecisionDetails, PendingOffer
from pipeline.settings import Settings


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
        self, settings: Settings, tables: GlobalTables, models: ModelFollower, instance: str
    ) -> None:
        self._top_k = settings.top_k
        self._objective = settings.objective
        self._tables = tables
        self._models = models
        self._instance = instance
        self.policy = make_policy(settings.exploration, settings.seed, settings.epsilon)
        groups = ControlGroups(
            settings.control_share, settings.control_baselines, settings.control_salt
        )
        self.choosers = Choosers(groups, self.policy, settings.seed + 2)
        # the challenger is scored in shadow with the same kind of policy as the champion
        self.shadow = Shadow(make_policy(settings.exploration, settings.seed + 1, settings.epsilon))
        self.contact = ContactPolicy(
            default_max_impressions=settings.default_max_impressions,
            channel_daily_limit=settings.channel_daily_limit,
            fatigue_share=settings.fatigue_share,
        )
        self.offers_now = OffersNow(
            tables, self.contact, settings.objective, settings.irrelevant_value_ratio
        )
        self.stats = DecisionStats()

    def decide(self, book: CustomerDecisions, valid: ValidOffers) -> Decision:
        model = self._models.model  # one model for the whole decision, whatever arrives meanwhile
        shown_today = book.channel_shown(valid.channel)
        group = self.choosers.groups.group_of(valid.customer_id)
        if not self.contact.channel_allowed(shown_today, valid.timestamp.timestamp()):
            self.stats.suppressed += len(valid.candidates)
            return self._decision(valid, model, group, [], "channel daily limit reached")
        showable = self.showable(model, valid)
        scoring = score(model, showable.offers, self._objective)
        order, propensities = self.choosers.choose(group, model.ranking(scoring.ranked))
        offers = ranked_offers(scoring, order[: self._top_k], propensities)
        if not offers:
            nothing = "no offer worth showing" if group.baseline != "none" else "shows nothing"
            return self._decision(valid, model, group, [], nothing)
        kept = self._remember(book, valid, decision_id_of(valid), offers, scoring, model, group)
        first = kept.offers[offers[0].offer_id].features
        explanation = explain(model, scoring, order[0], self._objective, first)
        best = best_by_expected_value(scoring, showable.expected_worth)
        return self._decision(valid, model, group, offers, explanation, best)

    def repeat(self, book: CustomerDecisions, valid: ValidOffers, earlier: Decision) -> bool:
        """Keep `earlier`, the decision already emitted for this event, as if it were made now
        (after a crash, see `pipeline.next_best_offer.emitted`): its offers as they were, with
        their features computed again. False if an offer of it is no longer a candidate."""
        if not earlier.offers:
            return True
        model = self._models.model
        scoring = self.scoring(model, valid)
        if any(o.offer_id not in scoring.offers.keys for o in earlier.offers):
            return False
        group = Group(earlier.group, earlier.baseline)
        self._remember(book, valid, earlier.decision_id, earlier.offers, scoring, model, group,
                       decided_by=earlier.model_version)  # fmt: skip
        return True

    def scoring(self, model: OnlineRanker, valid: ValidOffers) -> Scoring:
        """`model`'s scores of the offers of `valid` that may be shown now."""
        return score(model, self.showable(model, valid).offers, self._objective)

    def showable(self, model: OnlineRanker, valid: ValidOffers) -> Showable:
        moment = Moment(valid.event_type, valid.channel, valid.timestamp, valid.event_attributes)
        showable = self.offers_now.of(valid, model.features.for_decision(valid.customer, moment))
        self.stats.suppressed += showable.suppressed
        return showable

    def _remember(
        self,
        book: CustomerDecisions,
        valid: ValidOffers,
        decision_id: str,
        offers: list[RankedOffer],
        scoring: Scoring,
        model: OnlineRanker,
        group: Group,
        decided_by: str | None = None,
    ) -> DecisionDetails:
        """Keep a decision's offers in the customer's book, with the features each has now (what
        its label is learned from), until each is answered or expires; `decided_by` names the
        model version that chose them, if not `model`."""
        now, first = valid.timestamp.timestamp(), offers[0]
        keys = scoring.offers.keys
        pending = {
            o.offer_id: PendingOffer(
                features=scoring.offers.candidate(keys.index(o.offer_id)).all_features(),
                p_accept=o.p_accept,
                value_now=o.value_now,
                propensity=o.propensity,
                rank=o.rank,
            )
            for o in offers
        }
        challenger = self._models.challenger
        details = DecisionDetails(
            offers=pending,
            first=first.offer_id,
            customer=valid.customer_id,
            model=decided_by or model.version,
            feature_set=model.features.label,
            shadow=self.shadow.score(challenger, scoring, first.offer_id, first.propensity),
            challenger=self._models.challenger_version,
            group=group.name,
        )
        offers_now = self._tables.catalogue.offers
        due = now + min(response_window_seconds(offers_now.get(o.offer_id)) for o in offers)
        book.add(decision_id, now, due, details)
        return details

    def _decision(
        self,
        valid: ValidOffers,
        model: OnlineRanker,
        group: Group,
        offers: list[RankedOffer],
        explanation: str,
        best_by_expected_value: str | None = None,
    ) -> Decision:
        self.stats.decisions += 1
        if group.baseline is not None:
            explanation = f"control group, baseline {group.baseline}: {explanation}"
        return Decision(
            decision_id=decision_id_of(valid),
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
            policy=self.choosers.name(group),
            feature_set=model.features.label,
            rule_versions=valid.rule_versions,
            explanation=explanation,
            group=group.name,
            baseline=group.baseline,
            best_by_expected_value=best_by_expected_value,
        )
