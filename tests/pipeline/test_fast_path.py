"""Speed never changes a decision: the built-in linear models' fast path (every candidate
scored at once over feature columns) decides as the general path (each candidate's features as a
dict, through the classifier's `predict_proba_one`), on a recorded stream of valid offers."""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks import workload
from features import Exposure, Moment, make_feature_set
from features import index as index_module
from features.feature_set import merged
from models.ranker import OnlineRanker, make_ranker
from pipeline.contracts.schemas import Offer, ValidOffers
from pipeline.next_best_offer.processor import Ranker
from pipeline.next_best_offer.state import CustomerDecisions, MemoryState
from tests.factories import decide, make_ranker_processor

RECORDS = 150


def catalogue() -> list[dict[str, Any]]:
    return [Offer.model_validate_json(raw).model_dump() for _, raw in workload.offers(100)]


def recorded_stream() -> list[ValidOffers]:
    """The bench's valid offers, with exposures of every kind: shown and ignored offers, and
    offers no trigger was seen for."""
    rng = random.Random(17)
    records = []
    for _, raw in workload.valid_offers(RECORDS, seed=9):
        record = ValidOffers.model_validate_json(raw)
        for candidate in record.candidates:
            candidate["impressions"] = rng.choice([0, 0, 1, 2, 4])
            candidate["unanswered_impressions"] = rng.randint(0, candidate["impressions"])
            if rng.random() < 0.1:
                candidate["days_since_trigger"] = None
        records.append(record)
    return records


def trained(model: str, feature_set: str, offers: list[dict[str, Any]]) -> OnlineRanker:
    """A model that learned 1,500 labels: weights, posteriors and learned group priors."""
    ranker = make_ranker(model, features=make_feature_set(feature_set))
    rng = random.Random(5)
    records = recorded_stream()
    for _ in range(1_500):
        record = rng.choice(records)
        moment = Moment(record.event_type, record.channel, record.timestamp)
        offer = rng.choice(offers)
        exposure = Exposure(rng.uniform(0, 30), rng.choice(["primary", "secondary"]), 1, 0)
        x = merged(*ranker.features.for_decision(record.customer, moment).parts(offer, exposure))
        accepted = rng.random() < (0.4 if offer["category"] in ("card", "loan") else 0.1)
        ranker.learn_one(x, accepted)
    return ranker


CASES = [
    (model, feature_set, exploration, "value-curve")
    for model in ("bayesian_logistic", "logistic")
    for feature_set in ("every-field", "default")
    for exploration in ("randomized-ucb", "thompson", "epsilon-greedy")
] + [  # each offer's own time curve ranked by: no second pass as if primary
    ("bayesian_logistic", "every-field", "randomized-ucb", "learned-curve"),
    ("logistic", "default", "thompson", "learned-curve"),
]


@pytest.mark.parametrize(("model", "feature_set", "exploration", "objective"), CASES)
def test_the_fast_path_decides_as_the_general_path(
    tmp_path: Path, model: str, feature_set: str, exploration: str, objective: str
) -> None:
    offers = catalogue()
    learned = trained(model, feature_set, offers)
    settings = {"exploration": exploration, "feature_set": feature_set, "ranker_model": model,
                "top_k": 3, "objective": objective}  # fmt: skip
    fast, general = (make_ranker_processor(tmp_path / p, offers, **settings) for p in "fg")
    fast.models.model = copy.deepcopy(learned)
    general.models.model = copy.deepcopy(learned)
    general.models.model.fast_path = False
    books: dict[str, tuple[MemoryState, MemoryState]] = {}
    decided = 0
    for record in recorded_stream():
        assert_same_scores(fast, general, record)
        states = books.setdefault(record.customer_id, (MemoryState(), MemoryState()))
        fast_book, general_book = (CustomerDecisions(state) for state in states)
        by_fast, by_general = decide(fast, fast_book, record), decide(general, general_book, record)
        fast_offers, general_offers = by_fast.pop("offers"), by_general.pop("offers")
        assert [o["offer_id"] for o in fast_offers] == [o["offer_id"] for o in general_offers]
        for a, b in zip(fast_offers, general_offers, strict=True):
            assert a["propensity"] == pytest.approx(b["propensity"], abs=1e-9)
            for field in ("score", "p_accept", "value_now"):
                assert a[field] == pytest.approx(b[field], abs=2e-6)  # as rounded to 6 digits
        assert by_fast == by_general  # the explanation, the best choice, the versions
        assert fast_book.index == general_book.index
        for decision_id in fast_book.pending:  # what each label will be learned from
            fast_details, general_details = (
                book.details(decision_id) for book in (fast_book, general_book)
            )
            assert fast_details.offers.keys() == general_details.offers.keys()
            for offer_id, pending in fast_details.offers.items():
                other = general_details.offers[offer_id]
                assert pending.features == other.features
                assert pending.propensity == pytest.approx(other.propensity, abs=1e-9)
        fast_book.save()
        general_book.save()
        decided += bool(fast_offers)
    assert decided > RECORDS * 0.9


def assert_same_scores(fast: Ranker, general: Ranker, record: ValidOffers) -> None:
    """Each candidate's P(accept) as ranked and as it is now, to 1e-9, and the ranked order."""
    scorings = []
    for ranker in (fast, general):
        scorings.append(ranker.decider.scoring(ranker.models.model, record))
    by_fast, by_general = scorings
    assert by_fast.ranked.keys == by_general.ranked.keys
    np.testing.assert_allclose(by_fast.ranked.p_accept, by_general.ranked.p_accept, atol=1e-9)
    np.testing.assert_allclose(by_fast.ranked.score, by_general.ranked.score, rtol=1e-9)
    np.testing.assert_allclose(by_fast.p_now, by_general.p_now, atol=1e-9)
    assert by_fast.ranked.logit is not None and by_general.ranked.logit is None


def test_a_full_feature_index_starts_afresh_and_scores_stay_those_of_the_general_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CRM field of unbounded cardinality must not grow the index for ever: once full, it
    starts afresh at the next decision, and the models read their arrays over it again."""
    monkeypatch.setattr(index_module, "MAX_NAMES", 400)
    offers = catalogue()
    ranker = make_ranker_processor(tmp_path, offers, feature_set="every-field", top_k=3)
    model = ranker.models.model = trained("bayesian_logistic", "every-field", offers)
    general = copy.deepcopy(model)
    general.fast_path = False
    index = model.features.index
    first_generation = index.generation
    for number, record in enumerate(recorded_stream()[:40]):
        # an attribute unique to each customer: a new indicator, crossed with every offer
        record.customer["attributes"] = {"crm_id": f"X{number}"}
        showable = ranker.decider.showable(model, record).offers
        fast = model.score(showable)
        np.testing.assert_allclose(fast.p_accept, general.score(showable).p_accept, atol=1e-9)
        assert len(index) <= 400 + 60 * len(showable)  # one decision's names beyond the bound
    assert index.generation > first_generation
