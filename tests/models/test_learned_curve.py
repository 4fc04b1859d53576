"""Each offer's time value learned from the labels, the documented curve as the prior: a fresh
model reads P(accept) outside the interest periods as the curve says; labels overrule it per
offer, and only where the customers do not follow it."""

from __future__ import annotations

import math
import pickle
import random
from datetime import UTC, datetime

import pytest

from features import DEFAULT_FEATURES, Exposure, Moment, make_feature_set
from features.offer_features import DOCUMENTED_CURVE, IRRELEVANT_SHARE
from models.ranker import OnlineRanker, make_ranker

CUSTOMER = {"customer_id": "c1", "segment": "mass", "age": 34, "products_held": []}
MOMENT = Moment("app_login", "web", datetime(2026, 3, 2, 9, tzinfo=UTC))
EVERGREEN = {"offer_id": "save-1", "category": "savings", "secondary_value_ratio": 0.5}
DOCUMENTED = {"offer_id": "save-2", "category": "savings", "secondary_value_ratio": 0.5}
PRIMARY, NO_TRIGGER = Exposure(1.0, "primary"), Exposure(None, "irrelevant")


def logit(model: OnlineRanker, offer: dict[str, object], exposure: Exposure) -> float:
    p = model.p_accept(DEFAULT_FEATURES.features(CUSTOMER, offer, MOMENT, exposure))
    return math.log(p / (1 - p))


@pytest.mark.parametrize("model", ["bayesian_logistic", "bayesian_logistic_refit"])
def test_a_fresh_model_reads_the_documented_curve(model: str) -> None:
    fresh = make_ranker(model)
    away = logit(fresh, DOCUMENTED, NO_TRIGGER) - logit(fresh, DOCUMENTED, PRIMARY)
    assert away == pytest.approx(math.log(IRRELEVANT_SHARE))
    secondary = Exposure(4.0, "secondary")
    assert logit(fresh, DOCUMENTED, secondary) - logit(fresh, DOCUMENTED, PRIMARY) == (
        pytest.approx(math.log(0.5))
    )


@pytest.mark.parametrize("model", ["bayesian_logistic", "bayesian_logistic_refit"])
def test_labels_overrule_the_curve_for_the_offer_customers_take_without_a_trigger(
    model: str,
) -> None:
    ranker = make_ranker(model)
    rng = random.Random(3)
    for _ in range(6000):
        offer = rng.choice([EVERGREEN, DOCUMENTED])
        exposure = rng.choice([PRIMARY, NO_TRIGGER])
        steady = offer is EVERGREEN or exposure is PRIMARY
        accepted = rng.random() < (0.3 if steady else 0.3 * 0.1)
        ranker.learn_one(DEFAULT_FEATURES.features(CUSTOMER, offer, MOMENT, exposure), accepted)

    def share_without_trigger(offer: dict[str, object]) -> float:
        away, primary = (
            DEFAULT_FEATURES.features(CUSTOMER, offer, MOMENT, e) for e in (NO_TRIGGER, PRIMARY)
        )
        return ranker.p_accept(away) / ranker.p_accept(primary)

    assert share_without_trigger(EVERGREEN) > 0.75  # truly 1: the labels overrule the curve
    assert share_without_trigger(DOCUMENTED) < 0.2  # truly 0.1: the curve holds
    assert ranker.classifier.weight_of(DOCUMENTED_CURVE) == 1.0  # the prior itself stays


def test_a_model_of_default_5_has_no_curve_and_no_offset() -> None:
    old = pickle.loads(pickle.dumps(DEFAULT_FEATURES))
    old.version = 5
    x = old.features(CUSTOMER, DOCUMENTED, MOMENT, NO_TRIGGER)
    assert DOCUMENTED_CURVE not in x and not any("×offer=save-2" in n and "phase" in n for n in x)
    assert old.offsets == () and make_feature_set("every-field").offsets == (DOCUMENTED_CURVE,)


def test_the_review_sets_each_offers_learned_curve_beside_the_documented_one() -> None:
    from models.evaluation import StreamMetrics
    from pipeline.review.curves import learned_curves
    from pipeline.review.plots import review_figures

    ranker, metrics = make_ranker(), StreamMetrics()
    rng = random.Random(4)
    for _ in range(6000):
        offer, exposure = rng.choice([EVERGREEN, DOCUMENTED]), rng.choice([PRIMARY, NO_TRIGGER])
        steady = offer is EVERGREEN or exposure is PRIMARY
        x = DEFAULT_FEATURES.features(CUSTOMER, offer, MOMENT, exposure)
        metrics.curve_seen(str(offer["offer_id"]), x)
        ranker.learn_one(x, rng.random() < (0.3 if steady else 0.03))
    assert metrics.documented_curves[("save-1", "savings")] == {
        "primary": 0.0,
        "irrelevant": pytest.approx(math.log(IRRELEVANT_SHARE)),
    }
    evergreen, documented = learned_curves(ranker, metrics.documented_curves)
    assert evergreen.offer_id == "save-1"  # the one that differs most comes first
    assert evergreen.learned["irrelevant"] > 0.7 and evergreen.difference > 7
    assert documented.learned["irrelevant"] == pytest.approx(0.1, abs=0.05)
    assert evergreen.row()["irrelevant documented"] == pytest.approx(0.1)
    assert "learned_curves.png" in review_figures(metrics, ranker)
