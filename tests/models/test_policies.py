"""Exploration policies: what they log is the probability with which they put an offer first."""

from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.bayesian_logistic import BayesianLogisticRegression
from models.names import POLICIES
from models.policies import (
    BetaAroundEstimate,
    EpsilonGreedy,
    ExplorationPolicy,
    Greedy,
    RandomizedUCB,
    Ranking,
    SquareCB,
    ThompsonSampling,
    make_policy,
)
from models.ranker import Candidate, OnlineRanker
from pipeline.settings import Settings


def _policies(seed: int) -> dict[str, ExplorationPolicy]:
    return {
        "greedy": Greedy(seed=seed),
        "epsilon-greedy": EpsilonGreedy(0.2, seed=seed),
        "squarecb": SquareCB(gamma_scale=20.0, seed=seed),
        "thompson": ThompsonSampling(draws=50, seed=seed),
        "randomized-ucb": RandomizedUCB(draws=50, seed=seed),
        "beta-around-estimate": BetaAroundEstimate(draws=50, seed=seed),
    }


def _learned_ranking() -> Ranking:
    """Three offers a Bayesian model knows unequally well, as the ranker hands them over, in
    the order a, b, new."""
    model = OnlineRanker(BayesianLogisticRegression())
    for i in range(60):
        model.learn_one({"bias": 1.0, "offer=a": 1.0}, i % 2 == 0)
        model.learn_one({"bias": 1.0, "offer=b": 1.0}, i % 5 == 0)
    candidates = [
        Candidate(key, {"bias": 1.0, f"offer={key}": 1.0}, value_now=value)
        for key, value in (("a", 100.0), ("b", 100.0), ("new", 100.0))
    ]
    return model.ranking(model.score(candidates))


scores_and_p = st.lists(st.floats(0.0, 0.99), min_size=1, max_size=12).map(
    lambda ps: Ranking(ps, [100.0] * len(ps))
)


@given(scores_and_p, st.sampled_from(sorted(_policies(0))))
def test_propensities_are_a_distribution_and_the_first_never_has_propensity_zero(
    ranking: Ranking, kind: str
) -> None:
    policy = _policies(1)[kind]
    order, propensities = policy.choose(ranking)
    assert sorted(order) == list(range(len(ranking)))
    assert all(0.0 <= q <= 1.0 for q in propensities)
    assert sum(propensities) == pytest.approx(1.0, abs=1e-9)
    assert propensities[order[0]] > 0.0


@pytest.mark.parametrize("kind", sorted(_policies(0)))
def test_each_policy_puts_an_offer_first_as_often_as_its_logged_propensity_says(
    kind: str,
) -> None:
    """Sampling: over many decisions on one ranking, the share of decisions that put offer i
    first equals the mean propensity logged for i (the propensities a decision logs may vary
    from decision to decision, as Thompson sampling's do)."""
    ranking = _learned_ranking()
    policy = _policies(7)[kind]
    n = 3000
    decisions = [policy.choose(ranking) for _ in range(n)]
    firsts = Counter(order[0] for order, _ in decisions)
    for offer in range(len(ranking)):
        mean_propensity = sum(props[offer] for _, props in decisions) / n
        assert firsts[offer] / n == pytest.approx(mean_propensity, abs=0.025), offer
    assert all(props[order[0]] > 0 for order, props in decisions)


def test_thompson_orders_and_counts_from_the_same_draws() -> None:
    """Before: one sample ordered, 200 others counted, and the offer put first could carry
    propensity 0 (`ThompsonSampling(seed=2345).choose([0.5, 0.2], [0.5, 0.2])`)."""
    for seed in range(300):
        for policy in (BetaAroundEstimate(seed=seed), ThompsonSampling(seed=seed)):
            order, propensities = policy.choose(Ranking([0.5, 0.2], [1.0, 1.0]))
            assert propensities[order[0]] > 0.0, (policy.name, seed)


def test_thompson_explores_what_the_model_has_not_seen_and_exploits_what_it_knows() -> None:
    ranking = _learned_ranking()
    tried = {}
    for scale in (0.25, 1.0):  # a narrowed posterior, and the posterior as it is
        policy = ThompsonSampling(variance_scale=scale, seed=3)
        firsts = Counter(policy.choose(ranking)[0][0] for _ in range(2000))
        # "a" (accepted half of the time) is best; "b" (a fifth) is known to be worse; "new"
        # has no label at all: tried more often than the known loser
        assert firsts[0] > firsts[2] > firsts[1], scale
        tried[scale] = firsts[2]
    assert 0 < tried[0.25] < tried[1.0] and tried[1.0] > 200


def test_greedy_shares_exact_ties_and_never_lets_input_order_decide() -> None:
    policy = Greedy(seed=1)
    firsts = Counter(
        policy.choose(Ranking([0.0, 0.0, 0.0], [1.0, 1.0, 1.0]))[0][0] for _ in range(600)
    )
    assert set(firsts) == {0, 1, 2} and min(firsts.values()) > 150
    order, propensities = policy.choose(Ranking([0.1, 0.5, 0.3], [10.0, 10.0, 10.0]))
    assert order == [1, 2, 0] and propensities == [0.0, 1.0, 0.0]


def test_a_probability_of_zero_does_not_make_the_first_candidate_win() -> None:
    """Before: with P = 0 the Beta policy's scale was 0 and index 0 won with propensity 1."""
    policy = BetaAroundEstimate(seed=4)
    firsts = Counter(policy.choose(Ranking([0.0, 0.0], [50.0, 50.0]))[0][0] for _ in range(400))
    assert min(firsts.values()) > 120


@pytest.mark.parametrize("n", [80, 3000])
def test_propensities_are_not_rounded(n: int) -> None:
    """Before: rounded to 4 decimals, 80 candidates summed to 1.0039 and 3,000 explored at 0."""
    p = np.linspace(0.01, 0.5, n)
    _, propensities = EpsilonGreedy(epsilon=0.1, seed=0).choose(Ranking(p, np.ones(n)))
    assert sum(propensities) == pytest.approx(1.0, abs=1e-12)
    assert min(propensities) == pytest.approx(0.1 / n, rel=1e-12)


def test_squarecb_gives_close_seconds_more_chances_than_clear_losers() -> None:
    _, propensities = SquareCB(gamma_scale=10.0).choose(Ranking([0.5, 0.45, 0.05], [1.0, 1.0, 1.0]))
    assert propensities[0] > propensities[1] > propensities[2] > 0


@pytest.mark.parametrize(
    ("policy", "name"),
    [
        (ThompsonSampling(seed=0), "thompson(0.01)"),
        (RandomizedUCB(seed=0), "randomized-ucb(0.5-1.5)"),
    ],
)
def test_a_posterior_policy_without_a_posterior_decides_with_squarecb_and_says_so(
    policy: ExplorationPolicy, name: str
) -> None:
    _, propensities = policy.choose(Ranking([0.5, 0.45, 0.05], [1.0, 1.0, 1.0]))
    assert propensities == SquareCB(seed=0).choose(Ranking([0.5, 0.45, 0.05], [1, 1, 1]))[1]
    assert policy.name.startswith("squarecb") and "no posterior" in policy.name
    policy.choose(_learned_ranking())
    assert policy.name == name


def _a_known_offer_and_a_new_one(new_offer_labels: int = 0) -> Ranking:
    """a: accepted half of the time, b: a fifth, 100 labels each; new: worth 11% more than a,
    with `new_offer_labels` labels (accepted a tenth of the time): its estimate is below a's."""
    model = OnlineRanker(BayesianLogisticRegression())
    for i in range(100):
        model.learn_one({"bias": 1.0, "offer=a": 1.0}, i % 2 == 0)
        model.learn_one({"bias": 1.0, "offer=b": 1.0}, i % 5 == 0)
    for i in range(new_offer_labels):
        model.learn_one({"bias": 1.0, "offer=new": 1.0}, i % 10 == 0)
    candidates = [
        Candidate(key, {"bias": 1.0, f"offer={key}": 1.0}, value_now=value)
        for key, value in (("a", 100.0), ("b", 100.0), ("new", 111.0))
    ]
    return model.ranking(model.score(candidates))


def test_randomized_ucb_tries_an_offer_it_knows_little_of_while_it_might_be_the_best() -> None:
    ranking = _a_known_offer_and_a_new_one()
    assert ranking.scores[0] > ranking.scores[2] > ranking.scores[1]  # greedy: always a
    policy = RandomizedUCB(seed=5)
    firsts = Counter(policy.choose(ranking)[0][0] for _ in range(1000))
    # new's wider posterior makes it the best at most levels of optimism, a at the lowest; b,
    # known to be worse, never
    assert firsts[2] > firsts[0] > 50 and firsts[1] == 0
    # once its labels say it is worse, it is judged on its estimate
    learned = _a_known_offer_and_a_new_one(new_offer_labels=100)
    assert Counter(policy.choose(learned)[0][0] for _ in range(300)) == {0: 300}


def test_randomized_ucb_is_greedy_without_optimism() -> None:
    ranking = _a_known_offer_and_a_new_one()
    policy = RandomizedUCB(min_optimism=0.0, max_optimism=0.0, seed=1)
    assert policy.choose(ranking) == ([0, 2, 1], [1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="min_optimism"):
        RandomizedUCB(min_optimism=1.0, max_optimism=0.5)


def test_every_named_policy_is_made_seeded_and_an_unknown_name_lists_them() -> None:
    for name in POLICIES:
        policy = make_policy(name, seed=5)
        assert isinstance(policy, ExplorationPolicy), name
        order, propensities = policy.choose(Ranking(p_accept=[0.2, 0.1], worth=[1.0, 1.0]))
        assert sorted(order) == [0, 1] and abs(sum(propensities) - 1) < 1e-9, name
    epsilon_greedy = make_policy("epsilon-greedy", epsilon=0.3)
    assert isinstance(epsilon_greedy, EpsilonGreedy) and epsilon_greedy.epsilon == 0.3
    with pytest.raises(ValueError, match=r"unknown policy 'gready'.*randomized-ucb"):
        make_policy("gready")


def test_the_exploration_setting_takes_a_named_policy_only() -> None:
    assert Settings(exploration="thompson").exploration == "thompson"
    with pytest.raises(ValueError, match="unknown policy 'gready'"):
        Settings(exploration="gready")
