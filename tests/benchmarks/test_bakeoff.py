"""`make bakeoff` on a small data set: its rewards are played, and its comparisons are paired."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks import bakeoff


def _three_clusters(rows: int = 300) -> bakeoff.DataSet:
    """Three classes, each a cluster around its own corner: easy for a linear model per arm."""
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 3, rows)
    features = np.eye(3)[labels] * 2.0 + rng.normal(0.0, 0.3, (rows, 3))
    return bakeoff._standardised("clusters", features, labels, ("a", "b", "c"))


@pytest.fixture
def clusters(monkeypatch: pytest.MonkeyPatch) -> bakeoff.DataSet:
    data = _three_clusters()
    monkeypatch.setitem(bakeoff.DATA_SETS, "clusters", lambda: data)
    return data


def test_a_policy_learns_the_classes_from_the_reward_of_what_it_chose(
    clusters: bakeoff.DataSet,
) -> None:
    greedy = bakeoff.run(clusters, "greedy", seed=0)
    assert greedy > 0.8  # a third by chance
    assert bakeoff.run(clusters, "greedy", seed=0) == greedy  # a seed replays its run
    assert bakeoff.run(clusters, bakeoff.FULL_INFORMATION, seed=0) > 0.8


def test_each_policy_is_compared_with_greedy_seed_by_seed(
    clusters: bakeoff.DataSet, capsys: pytest.CaptureFixture[str]
) -> None:
    results = bakeoff.bakeoff(
        ["clusters"], ["epsilon-greedy", "greedy"], [0, 1, 2], "bayesian_logistic"
    )

    on_clusters = results["clusters"]
    assert list(on_clusters) == ["greedy", "epsilon-greedy", bakeoff.FULL_INFORMATION]
    assert "vs greedy" not in on_clusters["greedy"]
    greedy, explorer = on_clusters["greedy"]["per seed"], on_clusters["epsilon-greedy"]["per seed"]
    differences = [e - g for e, g in zip(explorer, greedy, strict=True)]
    compared = on_clusters["epsilon-greedy"]["vs greedy"]
    assert compared["difference"] == pytest.approx(sum(differences) / 3)
    assert compared["standard error"] == pytest.approx(np.std(differences, ddof=1) / math.sqrt(3))
    assert "vs greedy" in on_clusters[bakeoff.FULL_INFORMATION]
    assert f"vs greedy {compared['difference']:+.3f}" in capsys.readouterr().out


def test_a_paired_difference_has_a_standard_error_only_with_two_seeds_or_more() -> None:
    assert bakeoff.paired_difference([0.8, 0.84, 0.82], [0.79, 0.82, 0.82]) == pytest.approx(
        (0.01, 0.01 / math.sqrt(3))
    )
    difference, error = bakeoff.paired_difference([0.8], [0.7])
    assert difference == pytest.approx(0.1) and math.isnan(error)
    with pytest.raises(ValueError):
        bakeoff.paired_difference([0.8, 0.9], [0.7])
