import pickle
import random
from typing import Any

import numpy as np
import pytest
from river import linear_model, naive_bayes, optim, preprocessing, tree

from features import DEFAULT_FEATURES
from models.bayesian_logistic import BayesianLogisticRegression
from models.names import MODELS
from models.ranker import Candidate, OnlineRanker, make_ranker
from tests.plugins import segment_by_offer


def test_higher_value_ranks_higher_at_equal_p_accept() -> None:
    ranker = OnlineRanker()
    same = {"bias": 1.0}
    ranked = ranker.rank(
        [
            Candidate("low", dict(same), 50.0),
            Candidate("high", dict(same), 80.0),
            Candidate("lever", dict(same), 50.0, lever=2.0),
        ]
    )
    assert [c.key for c in ranked] == ["lever", "high", "low"]
    assert ranked[0].p_accept == ranked[1].p_accept == ranked[2].p_accept


@pytest.mark.parametrize("model", MODELS)
def test_every_model_learns_a_preference(model: str) -> None:
    ranker = make_ranker(model, seed=2)
    liked, disliked = {"offer=a": 1.0, "bias": 1.0}, {"offer=b": 1.0, "bias": 1.0}
    for _ in range(300):
        ranker.learn_one(liked, True)
        ranker.learn_one(disliked, False)
    assert ranker.p_accept(liked) > ranker.p_accept(disliked)
    assert ranker.version == f"{model}-600"
    bias = {"bias": 1.0}
    ranked = ranker.rank(
        [
            Candidate("b", {"offer=b": 1.0}, 10.0, blocks=(bias,)),
            Candidate("a", {"offer=a": 1.0}, 10.0, blocks=(bias,)),
        ]
    )
    assert [c.key for c in ranked] == ["a", "b"]
    assert ranked[0].p_accept == pytest.approx(ranker.p_accept(liked), abs=1e-12)
    restored = pickle.loads(pickle.dumps(ranker))
    assert restored.p_accept(liked) == ranker.p_accept(liked)


def test_unknown_model_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown model 'gpt'"):
        make_ranker("gpt")
    with pytest.raises(TypeError, match="not a River classifier"):
        OnlineRanker(preprocessing.StandardScaler())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="has no nothing_here"):
        make_ranker("tests.plugins:nothing_here")


def test_it_is_a_river_classifier_with_river_meanings() -> None:
    """predict_one is a label, predict_proba_one the probability of each; clone is unlearned,
    with the same hyper-parameters; hyper-parameters are stored under their own names."""
    ranker = OnlineRanker(linear_model.LogisticRegression(optimizer=optim.SGD(0.3)), name="lr")
    liked, disliked = {"offer=a": 1.0}, {"offer=b": 1.0}
    for _ in range(50):
        ranker.learn_one(liked, True)
        ranker.learn_one(disliked, False)
    assert ranker.predict_one(liked) is True and ranker.predict_one(disliked) is False
    proba = ranker.predict_proba_one(liked)
    assert set(proba) == {False, True}
    assert proba[True] == pytest.approx(1 - proba[False]) == pytest.approx(ranker.p_accept(liked))
    fresh = ranker.clone()
    assert fresh.n_learned == 0 and fresh.version == "lr-0"
    assert fresh.p_accept(liked) == 0.5
    assert fresh.classifier is not ranker.classifier
    assert fresh.classifier.optimizer.learning_rate == 0.3
    assert fresh.features == DEFAULT_FEATURES and fresh.dense is False
    assert ranker.version == "lr-100"


@pytest.mark.parametrize(
    "classifier",
    [
        preprocessing.StandardScaler() | linear_model.LogisticRegression(),
        preprocessing.MaxAbsScaler() | linear_model.LogisticRegression(),
        naive_bayes.GaussianNB(),
        tree.HoeffdingTreeClassifier(grace_period=20),
    ],
    ids=["scaled-logistic", "maxabs-logistic", "gaussian-nb", "hoeffding-tree"],
)
def test_any_river_classifier_or_pipeline_ranks_as_it_predicts(classifier) -> None:  # type: ignore[no-untyped-def]
    """The shared-part fast path (pipelines of per-feature scalers before a logistic regression)
    and the plain path give River's own predict_proba_one for every candidate."""
    rng = random.Random(7)
    ranker = OnlineRanker(classifier)
    for _ in range(300):
        x = {"a": rng.random(), "b": rng.random(), "c": rng.random()}
        ranker.learn_one(x, x["a"] + rng.random() * 0.3 > 0.8)
    shared = {"a": 0.9, "b": 0.2}
    candidates = [
        Candidate(f"c{i}", {"c": rng.random()}, value_now=10.0, blocks=(shared,)) for i in range(6)
    ]
    fast = ranker._linear_scores()
    assert (fast is not None) == (type(classifier) is linear_model.LogisticRegression)
    for candidate in ranker.rank(candidates):
        proba = classifier.predict_proba_one(candidate.all_features())
        assert candidate.p_accept == pytest.approx(proba.get(True, 0.0), abs=1e-12)


def test_a_ranker_from_settings_carries_its_feature_set_through_pickle() -> None:
    ranker = make_ranker("tests.plugins:scaled_logistic", features=segment_by_offer)
    assert ranker.version == "scaled_logistic-0"
    assert ranker.features.label == "segment-by-offer/1"
    restored = pickle.loads(pickle.dumps(ranker))
    assert restored.features.label == "segment-by-offer/1"
    bayes = make_ranker("tests.plugins:multinomial_bayes")
    assert bayes.version == "multinomial_bayes-0"
    assert bayes.classifier is not make_ranker("tests.plugins:multinomial_bayes").classifier


def test_contributions_name_the_strongest_features() -> None:
    ranker = OnlineRanker()
    for _ in range(100):
        ranker.learn_one({"segment=mass×category=card": 1.0, "bias": 1.0}, True)
    names = [
        name
        for name, _ in ranker.contributions(
            {"segment=mass×category=card": 1.0, "bias": 1.0, "weekend": 0.0}
        )
    ]
    assert names[0] == "segment=mass×category=card"


def test_contributions_of_a_pipeline_are_weights_times_what_its_last_step_sees() -> None:
    pipeline = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    ranker = OnlineRanker(pipeline)
    rng = random.Random(1)
    for _ in range(200):
        x = {"big": rng.random(), "small": rng.random()}
        ranker.learn_one(x, x["big"] > 0.5)
    x = {"big": 0.95, "small": 0.5}
    scaled = pipeline["StandardScaler"].transform_one(x)
    weights = pipeline["LogisticRegression"].weights
    expected = sorted(
        ((name, round(weights[name] * value, 4)) for name, value in scaled.items()),
        key=lambda part: abs(part[1]),
        reverse=True,
    )
    assert ranker.contributions(x) == expected
    assert expected[0][0] == "big"
    assert ranker.weights() == weights
    assert OnlineRanker(naive_bayes.BernoulliNB()).contributions(x) == []


def test_blocks_are_scored_as_river_scores_the_whole_candidate() -> None:
    """The logistic fast path (each block scored once per ranking) gives River's own P."""
    rng = random.Random(4)
    names = [f"f{i}" for i in range(30)]
    ranker = OnlineRanker()
    for _ in range(400):
        x = {name: rng.random() for name in rng.sample(names, 8)}
        ranker.learn_one(x, rng.random() < 0.3)
    shared = [{name: rng.random() for name in names[:10] if rng.random() < 0.7} for _ in range(3)]
    candidates = [
        Candidate(
            f"c{i}",
            {name: rng.random() for name in names[10:] if rng.random() < 0.3},
            value_now=rng.uniform(1, 100),
            blocks=(shared[i % 3],),
        )
        for i in range(12)
    ]
    for candidate in ranker.rank(candidates):
        whole = candidate.all_features()
        assert candidate.p_accept == pytest.approx(ranker.p_accept(whole), abs=1e-12)
        assert whole == {**shared[int(candidate.key[1:]) % 3], **candidate.candidate.features}


def test_all_features_is_a_new_dict() -> None:
    shared = {"bias": 1.0}
    candidate = Candidate("a", {"x": 2.0}, 1.0, blocks=(shared,))
    merged = candidate.all_features()
    merged["bias"] = 5.0
    assert shared == {"bias": 1.0}
    assert candidate.all_features() == {"bias": 1.0, "x": 2.0}


def test_a_model_pickled_before_rankers_took_a_classifier_loads_and_scores_as_before() -> None:
    """Registered versions from when the model was picked by name still load; the offer
    identity (and crosses) of feature set default/3 have no weight in them: they score as before."""
    classifier = linear_model.LogisticRegression(optimizer=optim.SGD(0.15), l2=1e-5)
    x = {"bias": 1.0, "category=card": 1.0}
    for _ in range(20):
        classifier.learn_one(x, True)
    old = OnlineRanker.__new__(OnlineRanker)
    old.__setstate__(
        {
            "model": "logistic",
            "learning_rate": 0.15,
            "seed": 0,
            "_classifier": classifier,
            "_n_learned": 20,
            "_n_positive": 20,
            "_feature_names": {},
        }
    )
    restored = pickle.loads(pickle.dumps(old))
    assert restored.version == "logistic-20" and restored.features == DEFAULT_FEATURES
    expected = classifier.predict_proba_one(x)[True]
    assert restored.p_accept({**x, "offer=card-1": 1.0}) == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize(
    "classifier", [None, BayesianLogisticRegression()], ids=["river-logistic", "bayesian"]
)
def test_logits_far_apart_never_tie_where_a_probability_saturates(classifier: Any) -> None:
    """Before: River's sigmoid is exactly 0 below a logit of -30, so both scored 0 and the
    input order put "worse" first."""
    ranker = OnlineRanker(classifier)
    for _ in range(5):
        ranker.learn_one({"x": 1.0}, False)
    ranked = ranker.rank(
        [Candidate("worse", {"x": 400.0}, 1.0), Candidate("better", {"x": 100.0}, 1.0)]
    )
    assert [c.key for c in ranked] == ["better", "worse"]
    assert ranked[0].p_accept > ranked[1].p_accept > 0.0


def test_the_bayesian_model_scores_alike_on_both_paths_and_is_surer_of_what_it_saw() -> None:
    ranker = OnlineRanker(BayesianLogisticRegression())
    rng = random.Random(3)
    for _ in range(300):
        offer = rng.choice("abc")
        ranker.learn_one({"bias": 1.0, f"offer={offer}": 1.0}, rng.random() < 0.2)
    shared = {"bias": 1.0}
    candidates = [Candidate(k, {f"offer={k}": 1.0}, 1.0, blocks=(shared,)) for k in "abz"]
    scores = ranker.score(candidates)
    for candidate in scores:
        assert candidate.p_accept == pytest.approx(
            ranker.predict_proba_one(candidate.all_features())[True], abs=1e-12
        )
    model = ranker.classifier
    assert model.logit_posterior({"offer=a": 1.0})[1] < model.logit_posterior({"offer=z": 1.0})[1]
    draws = ranker.posterior(scores)(np.random.default_rng(0), 4000, 1.0)
    assert draws.shape == (4000, 3)
    # the draws centre on the estimate, and spread most for the offer never seen
    assert np.median(draws[:, 0]) == pytest.approx(scores[0].p_accept, abs=0.02)
    assert draws[:, 2].std() > 1.5 * draws[:, 0].std()
    # the logits' draws have the posterior's means, variances and covariances: rows that share
    # a part (here all of them: the bias) move together
    rows = [(shared, c.features) for c in candidates]
    logits = model.sample_logits(rows, 20_000, np.random.default_rng(1))
    for row, c in enumerate(candidates):
        mean, variance = model.logit_posterior(c.all_features())
        assert logits[:, row].mean() == pytest.approx(mean, abs=0.03)
        assert logits[:, row].var() == pytest.approx(variance, rel=0.05)
    shared_variance = model.logit_posterior(shared)[1]  # the bias's and the intercept's
    assert np.cov(logits[:, 0], logits[:, 1])[0, 1] == pytest.approx(shared_variance, rel=0.1)
