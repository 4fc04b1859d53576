"""Off-policy estimators against a known reward model: errors shrink, intervals cover truth."""

from __future__ import annotations

import numpy as np
import pytest

from models.off_policy import (
    ESTIMATORS,
    LoggedRound,
    OffPolicyLog,
    RunningEstimate,
    estimate_all,
)
from models.synthetic import Policy, SyntheticBandit

BANDIT = SyntheticBandit(seed=5)
TARGET = BANDIT.softmax_policy(temperature=0.3)  # stochastic, far from uniform
TRIALS = 20
SIZES = (250, 1000, 4000)


def rounds_for(
    bandit: SyntheticBandit, rows: list[dict], target: Policy, rng: np.random.Generator
) -> list[LoggedRound]:
    """What the target policy says about each logged row; the reward model is deliberately
    biased (0.7 × truth + 0.05), so doubly robust must lean on its correction."""
    ids = [offer["offer_id"] for offer in bandit.offers]
    rounds = []
    for row in rows:
        context = bandit.context_of(row)
        probabilities = target(context)
        predicted = 0.7 * bandit.accept_probabilities(context) + 0.05
        logged = ids.index(row["offer_id"])
        rounds.append(
            LoggedRound(
                reward=float(row["accepted"]),
                propensity=row["propensity"],
                target_probability=float(probabilities[logged]),
                target_value=float(probabilities @ predicted),
                predicted_reward=float(predicted[logged]),
                matched=int(rng.choice(len(ids), p=probabilities)) == logged,
            )
        )
    return rounds


def trials(
    logging: str | Policy, size: int, seed: int
) -> list[dict[str, tuple[float, float, float]]]:
    """Per trial, estimator -> (value, low, high) on a fresh log of `size` rounds."""
    out = []
    for trial in range(TRIALS):
        rows = BANDIT.log(size, logging, seed=seed * 1000 + trial)  # same world, fresh log
        rng = np.random.default_rng(trial)
        log = OffPolicyLog.of(rounds_for(BANDIT, rows, TARGET, rng))
        out.append(
            {
                e.estimator: (e.value, e.low, e.high)
                for e in estimate_all(log, resamples=100, seed=trial)
            }
        )
    return out


@pytest.mark.parametrize(
    ("logging", "estimators"),
    [
        ("uniform", ("ips", "snips", "dr", "replay")),
        (BANDIT.softmax_policy(temperature=1.5), ("ips", "snips", "dr")),
    ],
    ids=["uniform-logging", "softmax-logging"],
)
def test_error_shrinks_with_log_size_and_intervals_cover_truth(
    logging: str | Policy, estimators: tuple[str, ...]
) -> None:
    truth = BANDIT.true_value(TARGET)
    results = {size: trials(logging, size, seed=size) for size in SIZES}
    for name in estimators:
        errors = [
            np.mean([abs(trial[name][0] - truth) for trial in results[size]]) for size in SIZES
        ]
        assert errors[0] > errors[1] > errors[2], (name, errors)
        assert errors[2] < 0.25 * truth, (name, errors, truth)
        covered = sum(trial[name][1] <= truth <= trial[name][2] for trial in results[SIZES[-1]])
        assert covered >= 0.8 * TRIALS, (name, covered)


def test_a_policy_known_to_be_better_is_estimated_better() -> None:
    bandit = SyntheticBandit(seed=5)
    rows = bandit.log(3000, "uniform")
    policies = {"best": bandit.best_policy, "target": TARGET, "worst": bandit.worst_policy}
    truth = {name: bandit.true_value(policy) for name, policy in policies.items()}
    assert truth["best"] > truth["target"] > truth["worst"]
    for name, estimator in ESTIMATORS.items():
        if name == "logging":
            continue
        values = {
            policy_name: estimator(
                OffPolicyLog.of(rounds_for(bandit, rows, policy, np.random.default_rng(1)))
            )
            for policy_name, policy in policies.items()
        }
        assert values["best"] > values["target"] > values["worst"], (name, values)


def test_running_estimate_equals_the_batch_estimators() -> None:
    bandit = SyntheticBandit(seed=2)
    rounds = rounds_for(bandit, bandit.log(500, "uniform"), TARGET, np.random.default_rng(0))
    running = RunningEstimate()
    for logged in rounds:
        running.update(logged)
    log = OffPolicyLog.of(rounds)
    values = running.values()
    assert values["rounds"] == 500
    for name in ("logging", "ips", "snips", "dr"):
        assert values[name] == pytest.approx(ESTIMATORS[name](log), abs=1e-6)


def test_a_zero_propensity_is_refused() -> None:
    with pytest.raises(ValueError, match="propensity"):
        OffPolicyLog.of([LoggedRound(1.0, 0.0, 1.0, 0.5, 0.5, True)])
