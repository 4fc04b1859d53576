import pickle

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
