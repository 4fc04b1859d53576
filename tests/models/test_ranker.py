import pickle
import random

import pytest

from models.ranker import MODELS, Candidate, OnlineRanker


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
    ranker = OnlineRanker(model=model, seed=2)
    liked, disliked = {"offer=a": 1.0, "bias": 1.0}, {"offer=b": 1.0, "bias": 1.0}
    for _ in range(300):
        ranker.learn_one(liked, True)
        ranker.learn_one(disliked, False)
    assert ranker.predict_one(liked) > ranker.predict_one(disliked)
    assert ranker.version == f"{model}-600"
    bias = {"bias": 1.0}
    ranked = ranker.rank(
        [
            Candidate("b", {"offer=b": 1.0}, 10.0, shared_features=bias),
            Candidate("a", {"offer=a": 1.0}, 10.0, shared_features=bias),
        ]
    )
    assert [c.key for c in ranked] == ["a", "b"]
    assert ranked[0].p_accept == pytest.approx(ranker.predict_one(liked), abs=1e-12)
    restored = pickle.loads(pickle.dumps(ranker))
    assert restored.predict_one(liked) == ranker.predict_one(liked)


def test_unknown_model_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown model"):
        OnlineRanker(model="gpt")


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


def test_shared_features_are_scored_as_river_scores_the_whole_candidate() -> None:
    """The logistic fast path (shared part scored once per ranking) gives River's own P."""
    rng = random.Random(4)
    names = [f"f{i}" for i in range(30)]
    ranker = OnlineRanker(seed=4)
    for _ in range(400):
        x = {name: rng.random() for name in rng.sample(names, 8)}
        ranker.learn_one(x, rng.random() < 0.3)
    shared = [{name: rng.random() for name in names[:10] if rng.random() < 0.7} for _ in range(3)]
    candidates = [
        Candidate(
            f"c{i}",
            {name: rng.random() for name in names[10:] if rng.random() < 0.3},
            value_now=rng.uniform(1, 100),
            shared_features=shared[i % 3],
        )
        for i in range(12)
    ]
    for candidate in ranker.rank(candidates):
        whole = candidate.all_features()
        assert candidate.p_accept == pytest.approx(ranker.predict_one(whole), abs=1e-12)
        assert whole == {**candidate.shared_features, **candidate.features}


def test_all_features_is_a_new_dict() -> None:
    shared = {"bias": 1.0}
    candidate = Candidate("a", {"x": 2.0}, 1.0, shared_features=shared)
    merged = candidate.all_features()
    merged["bias"] = 5.0
    assert shared == {"bias": 1.0}
    assert candidate.all_features() == {"bias": 1.0, "x": 2.0}
