"""The ranker's parts on their own, without Kafka or Quix: the feedback resolver, the decider and
the models it follows, each given what the stream step would give it."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

from models.ranker import OnlineRanker
from pipeline.contracts.schemas import Decision, Interaction
from pipeline.next_best_offer.decider import Decider
from pipeline.next_best_offer.feedback import FeedbackResolver
from pipeline.next_best_offer.models import ModelFollower
from pipeline.next_best_offer.silence import SilenceHorizon
from pipeline.next_best_offer.state import CustomerDecisions, MemoryState
from pipeline.settings import Settings
from tests.factories import SHORT_INTEREST, START, candidate, catalogue_offer, valid_offers


class Parts:
    """A decider, a resolver and their models over two offers, as one ranker instance has them:
    "a" is worth a little more than "b", so an unlearned model ranks "a" first."""

    def __init__(
        self, tmp_path: Path, horizon: SilenceHorizon | None = None, **settings: object
    ) -> None:
        offers = [
            catalogue_offer("a", **SHORT_INTEREST),
            catalogue_offer("b", **{**SHORT_INTEREST, "value": 90.0}),
        ]
        self.tables = SimpleNamespace(
            catalogue=SimpleNamespace(offers={o["offer_id"]: o for o in offers})
        )
        self.settings = Settings(state_dir=tmp_path, exploration="greedy", **settings)
        self.models = ModelFollower(self.settings)
        self.decider = Decider(self.settings, self.tables, self.models, "host-1")  # type: ignore[arg-type]
        self.resolver = FeedbackResolver(self.tables, horizon)  # type: ignore[arg-type]
        self.book = CustomerDecisions(MemoryState())

    def decide(self) -> Decision:
        return self.decider.decide(self.book, valid_offers(candidate("a", 1), candidate("b", 1)))


def reaction(decision: Decision, offer_id: str, outcome: str, at: datetime) -> Interaction:
    return Interaction(
        interaction_id=f"{decision.decision_id}-{offer_id}-{outcome}",
        decision_id=decision.decision_id,
        customer_id=decision.customer_id,
        offer_id=offer_id,
        channel="web",
        outcome=outcome,
        timestamp=at,
    )


def test_the_decider_emits_a_decision_record_naming_who_decided_with_what(tmp_path: Path) -> None:
    parts = Parts(tmp_path, top_k=2)
    decision = parts.decide()
    assert isinstance(decision, Decision)  # the exported schema's own model
    assert [o.offer_id for o in decision.offers] == ["a", "b"]  # equal P(accept): value decides
    assert decision.instance == "host-1" and decision.model_version == "bayesian_logistic-0"
    assert decision.challenger_version is None and decision.registry_version is None
    pending = parts.book.pending[decision.decision_id]
    assert set(pending["shown"]) == {"a", "b"}
    assert pending["due"] == START.timestamp() + 48 * 3600  # the offers' response window
    assert parts.decider.stats.decisions == 1


def test_the_decider_scores_the_challenger_in_shadow(tmp_path: Path) -> None:
    parts = Parts(tmp_path)
    parts.models.challenger, parts.models.challenger_version = OnlineRanker(), "7"
    decision = parts.decide()
    shadow = parts.book.details(decision.decision_id).shadow
    assert decision.challenger_version == "7"
    assert parts.book.details(decision.decision_id).challenger == "7"
    assert shadow is not None
    assert shadow["propensity"] == decision.offers[0].propensity == 1.0  # greedy
    assert 0 < shadow["target_probability"] <= 1


def test_an_accept_is_told_with_what_the_decision_knew_and_a_click_waits(tmp_path: Path) -> None:
    parts = Parts(tmp_path)
    decision = parts.decide()
    later = START + timedelta(minutes=5)
    told = []
    for offer_id, outcome in [("a", "impression"), ("b", "impression"), ("a", "click"),
                              ("a", "accept")]:  # fmt: skip
        resolution = parts.resolver.observe(
            parts.book, reaction(decision, offer_id, outcome, later)
        )
        assert resolution.refused is None
        told += resolution.feedback
    [accepted] = told  # one label, one feedback record, with what the decision knew
    assert (accepted.offer_id, accepted.outcome, accepted.label) == ("a", "accept", True)
    assert accepted.rank == 1 and accepted.propensity == 1.0 and accepted.reward == 100.0
    assert accepted.model_version == "bayesian_logistic-0" and accepted.customer_id == "C1"
    assert accepted.features == parts.book.details(decision.decision_id).offers["a"].features
    assert accepted.feature_set == "every-field/4"  # the stream's default
    assert accepted.decided_at == START and accepted.resolved_at == later
    assert parts.resolver.stats.positives == 1 and parts.resolver.stats.resolved == 1
    assert set(parts.book.pending[decision.decision_id]["shown"]) == {"b"}  # still open
    dismissed = parts.resolver.observe(parts.book, reaction(decision, "b", "dismiss", later))
    assert [(f.offer_id, f.label) for f in dismissed.feedback] == [("b", False)]
    assert decision.decision_id not in parts.book.pending
    assert parts.models.model.n_learned == 0  # a ranker tells labels; the learner learns them


def test_a_reaction_to_an_unknown_decision_is_refused_with_its_reason(tmp_path: Path) -> None:
    parts = Parts(tmp_path)
    decision = parts.decide()
    unknown = reaction(decision, "a", "accept", START).model_copy(update={"decision_id": "d-x"})
    resolution = parts.resolver.observe(parts.book, unknown)
    assert resolution.feedback == []
    assert (
        resolution.refused
        == f"interaction {unknown.interaction_id}: decision d-x is unknown or already resolved"
    )


def test_every_offer_an_event_finds_unanswered_is_told_as_a_negative_label(tmp_path: Path) -> None:
    parts = Parts(tmp_path)
    decision = parts.decide()
    soon = START + timedelta(minutes=1)
    for offer_id in ["a", "b"]:
        parts.resolver.observe(parts.book, reaction(decision, offer_id, "impression", soon))
    # one event three days later finds both past their 48-hour response window
    told = parts.resolver.expire(parts.book, (START + timedelta(days=3)).timestamp())
    assert [(f.offer_id, f.outcome, f.label) for f in told] == [
        ("a", "no response", False),
        ("b", "no response", False),
    ]
    assert parts.resolver.stats.expired == 2
    assert told[0].rank == 1 and told[1].rank == 2 and told[1].challenger is None


def test_a_silence_is_told_once_answers_that_late_are_rare_and_a_late_accept_after_it(
    tmp_path: Path,
) -> None:
    parts = Parts(tmp_path, SilenceHorizon(quantile=0.5, min_answers=4), top_k=2)
    for minutes in (10, 10, 10, 30):  # four answered decisions teach how long answers take
        answered = parts.decide()
        shown = START + timedelta(minutes=1)
        parts.resolver.observe(parts.book, reaction(answered, "a", "impression", shown))
        parts.resolver.observe(
            parts.book, reaction(answered, "a", "dismiss", shown + timedelta(minutes=minutes))
        )
    assert 10 * 60 <= parts.resolver.horizon.after(48 * 3600.0) < 1.19 * 10 * 60
    decision = parts.decide()
    shown = START + timedelta(hours=1)
    for offer_id in ("a", "b"):
        parts.resolver.observe(parts.book, reaction(decision, offer_id, "impression", shown))
    assert (
        parts.book.pending[decision.decision_id]["due"]
        < (shown + timedelta(minutes=12)).timestamp()
    )

    # an hour later both are silent: told as negatives, hours before their 48-hour window ends
    told = parts.resolver.expire(parts.book, (shown + timedelta(hours=1)).timestamp())
    assert [(f.offer_id, f.outcome, f.late) for f in told] == [
        ("a", "no response", False),
        ("b", "no response", False),
    ]
    assert told[0].challenger_version is None and parts.resolver.stats.expired == 2
    assert set(parts.book.silent(decision.decision_id)) == {"a", "b"}  # waiting for a late answer

    # "a" is accepted after its silence was told: a late positive, told once, and it is resolved
    late = parts.resolver.observe(
        parts.book, reaction(decision, "a", "accept", shown + timedelta(hours=5))
    )
    assert late.refused is None
    [accepted] = late.feedback
    assert (accepted.offer_id, accepted.label, accepted.late, accepted.reward) == (
        "a", True, True, 100.0
    )  # fmt: skip
    assert accepted.challenger is None  # the decision's round was counted at its silence
    assert parts.resolver.stats.late == 1 and set(parts.book.silent(decision.decision_id)) == {"b"}
    # a late dismiss says nothing new: resolved without a label
    dismissed = parts.resolver.observe(
        parts.book, reaction(decision, "b", "dismiss", shown + timedelta(hours=6))
    )
    assert dismissed.feedback == [] and decision.decision_id not in parts.book.pending
    again = parts.resolver.observe(
        parts.book, reaction(decision, "a", "accept", shown + timedelta(hours=7))
    )
    assert again.feedback == [] and again.refused is not None


def test_a_silent_offer_is_forgotten_when_its_window_ends_without_an_answer(tmp_path: Path) -> None:
    parts = Parts(tmp_path, SilenceHorizon(quantile=0.5, min_answers=0))
    parts.resolver.horizon.answered(600.0)
    decision = parts.decide()
    parts.resolver.observe(parts.book, reaction(decision, "a", "impression", START))
    told = parts.resolver.expire(parts.book, (START + timedelta(hours=1)).timestamp())
    assert [(f.offer_id, f.label) for f in told] == [("a", False)]
    assert (
        parts.book.pending[decision.decision_id]["due"] == (START + timedelta(hours=48)).timestamp()
    )
    assert parts.resolver.expire(parts.book, (START + timedelta(hours=47)).timestamp()) == []
    assert decision.decision_id in parts.book.pending
    assert parts.resolver.expire(parts.book, (START + timedelta(hours=49)).timestamp()) == []
    assert decision.decision_id not in parts.book.pending  # nothing more to learn from it
    assert parts.resolver.stats.expired == 1 and parts.resolver.stats.late == 0


def test_with_quantile_one_a_silence_waits_for_the_whole_response_window(tmp_path: Path) -> None:
    parts = Parts(tmp_path, SilenceHorizon(quantile=1.0, min_answers=0))
    for _ in range(10):
        parts.resolver.horizon.answered(60.0)
    decision = parts.decide()
    parts.resolver.observe(parts.book, reaction(decision, "a", "impression", START))
    assert parts.resolver.expire(parts.book, (START + timedelta(hours=47)).timestamp()) == []
    told = parts.resolver.expire(parts.book, (START + timedelta(hours=49)).timestamp())
    assert [(f.offer_id, f.label) for f in told] == [("a", False)]
    assert decision.decision_id not in parts.book.pending  # no late accept is waited for


def test_a_silence_first_seen_after_the_whole_window_is_told_and_forgotten_at_once(
    tmp_path: Path,
) -> None:
    parts = Parts(tmp_path, SilenceHorizon(quantile=0.5, min_answers=0))
    parts.resolver.horizon.answered(600.0)
    decision = parts.decide()
    parts.resolver.observe(parts.book, reaction(decision, "a", "impression", START))
    told = parts.resolver.expire(parts.book, (START + timedelta(days=3)).timestamp())
    assert [(f.offer_id, f.label, f.late) for f in told] == [("a", False, False)]
    assert decision.decision_id not in parts.book.pending  # no late accept can come any more
