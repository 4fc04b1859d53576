"""The learnability probe: unbiased labels teach the model; the truth scores its picks."""

from __future__ import annotations

import pytest

from benchmarks import learnability
from features import make_feature_set
from pipeline.simulation.worlds import make_world


@pytest.fixture
def probe() -> learnability.Probe:
    world = make_world("households", 300, 7)
    return learnability.Probe(world, make_feature_set("every-field"), "bayesian_logistic", 0)


def test_labels_lift_the_picks_above_an_untrained_model(probe: learnability.Probe) -> None:
    untrained = probe.pick_quality(decisions=200)
    probe.learn(4000)
    trained = probe.pick_quality(decisions=200)
    assert probe.labels == 4000
    assert 0.0 < untrained < trained <= 1.0
    assert probe.pick_quality(decisions=200) == trained  # held-out draws are the same per seed


def test_without_the_best_offers_the_choice_is_harder(probe: learnability.Probe) -> None:
    probe.learn(4000)
    assert probe.pick_quality(decisions=200, skip_best=4) < probe.pick_quality(decisions=200)


def test_the_curve_has_a_row_per_count_and_skip() -> None:
    rows = learnability.learning_curve("bank", "default", "bayesian_logistic", [200, 100],
                                       [0, 2], customers=50)  # fmt: skip
    counts = [(row["labels"], row["skip_best"]) for row in rows]
    assert counts == [(100, 0), (100, 2), (200, 0), (200, 2)]
    assert all(0.0 < row["pick_quality"] <= 1.0 for row in rows)


def test_the_worlds_own_features_learn_it_better_than_the_default_ones() -> None:
    """The ceiling a feature set is compared with: the features households' P(accept) is
    written in, against `default`'s, which read little of it (segment and age)."""
    world = make_world("households", 300, 7)
    quality = {}
    for name in ("default", "pipeline.simulation.households:STRUCTURE"):
        probe = learnability.Probe(world, make_feature_set(name), "bayesian_logistic", 0)
        probe.learn(4000)
        quality[name] = probe.pick_quality(decisions=200)
    assert quality["pipeline.simulation.households:STRUCTURE"] > quality["default"]
