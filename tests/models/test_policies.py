from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.policies import EpsilonGreedy, Greedy, ThompsonSampling

scores_and_p = st.lists(st.floats(0.01, 0.99), min_size=1, max_size=12).map(
    lambda ps: ([p * 100 for p in ps], ps)
)


@given(scores_and_p, st.sampled_from(["greedy", "epsilon", "thompson"]))
def test_propensities_are_probabilities_that_sum_to_at_most_one(
    data: tuple[list[float], list[float]], kind: str
) -> None:
    scores, p = data
    policy = {
        "greedy": Greedy(),
        "epsilon": EpsilonGreedy(0.2, seed=1),
        "thompson": ThompsonSampling(seed=1, draws=100),
    }[kind]
    order, propensities = policy.choose(scores, p)
    assert sorted(order) == list(range(len(scores)))
    assert all(0.0 <= q <= 1.0 for q in propensities)
    assert sum(propensities) <= 1.0 + 1e-3


def test_greedy_puts_the_best_first_with_certainty() -> None:
    order, propensities = Greedy().choose([1.0, 5.0, 3.0], [0.1, 0.5, 0.3])
    assert order == [1, 2, 0] and propensities == [0.0, 1.0, 0.0]


def test_epsilon_greedy_choices_match_its_propensities() -> None:
    policy = EpsilonGreedy(epsilon=0.3, seed=7)
    scores = [4.0, 1.0, 2.0, 3.0]
    firsts = Counter(policy.choose(scores, [0.4, 0.1, 0.2, 0.3])[0][0] for _ in range(20_000))
    _, propensities = policy.choose(scores, [0.4, 0.1, 0.2, 0.3])
    for arm, propensity in enumerate(propensities):
        assert firsts[arm] / 20_000 == pytest.approx(propensity, abs=0.015)


def test_thompson_choices_match_its_propensities() -> None:
    policy = ThompsonSampling(prior_strength=10, draws=400, seed=5)
    scores, p = [30.0, 25.0, 10.0], [0.3, 0.25, 0.1]
    decisions = [policy.choose(scores, p) for _ in range(4000)]
    firsts = Counter(order[0] for order, _ in decisions)
    mean_propensity = [sum(props[arm] for _, props in decisions) / 4000 for arm in range(3)]
    for arm in range(3):
        assert firsts[arm] / 4000 == pytest.approx(mean_propensity[arm], abs=0.03)
    assert 0.05 < firsts[1] / 4000 < firsts[0] / 4000  # it explores, but prefers the best
