"""Off-policy evaluation: what would a *target* policy have earned on what a *logging* policy did?

Each logged round gives the reward of the action the logging policy took, the probability it
had of taking it (its propensity) and, from the target policy, the probability it gives that
same action and its own expected reward under a reward model. From these:

- IPS: mean of w·r with w = π_target(a) / π_logging(a); unbiased, high variance.
- SNIPS: Σ w·r / Σ w; slightly biased, much steadier.
- DR (doubly robust): the reward model's value of the target policy plus the IPS-weighted
  error of the reward model on the logged action; unbiased if either part is right.
- Replay (rejection): mean reward over the rounds where the target's own choice equals the
  logged action; unbiased only for uniformly random logging.

Every estimate comes with a percentile bootstrap confidence interval.

>>> rounds = [LoggedRound(reward=1.0, propensity=0.5, target_probability=1.0,
...                       target_value=0.8, predicted_reward=0.8, matched=True),
...           LoggedRound(reward=0.0, propensity=0.5, target_probability=0.0,
...                       target_value=0.8, predicted_reward=0.1, matched=False)]
>>> log = OffPolicyLog.of(rounds)
>>> ips(log), snips(log), round(doubly_robust(log), 3), replay(log)
(1.0, 1.0, 1.0, 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class LoggedRound:
    """One logged decision, seen from the target policy."""

    reward: float
    propensity: float  # logging policy's probability of the logged action
    target_probability: float  # target policy's probability of the logged action
    target_value: float  # Σ_a π_target(a) · q̂(a): the reward model's value of the target
    predicted_reward: float  # q̂(logged action)
    matched: bool  # the target's own (sampled) choice is the logged action


@dataclass(frozen=True)
class OffPolicyLog:
    """Logged rounds as columns, so estimators and their bootstrap are vectorised."""

    reward: np.ndarray
    propensity: np.ndarray
    target_probability: np.ndarray
    target_value: np.ndarray
    predicted_reward: np.ndarray
    matched: np.ndarray

    @classmethod
    def of(cls, rounds: Iterable[LoggedRound]) -> OffPolicyLog:
        rows = list(rounds)

        def column(name: str) -> np.ndarray:
            return np.array([getattr(r, name) for r in rows], dtype=float)

        log = cls(
            reward=column("reward"),
            propensity=column("propensity"),
            target_probability=column("target_probability"),
            target_value=column("target_value"),
            predicted_reward=column("predicted_reward"),
            matched=column("matched").astype(bool),
        )
        if np.any(log.propensity <= 0):
            raise ValueError("every logged propensity must be > 0 (the action was taken)")
        return log

    def __len__(self) -> int:
        return len(self.reward)

    def take(self, index: np.ndarray) -> OffPolicyLog:
        return OffPolicyLog(*(getattr(self, name)[index] for name in self.__dataclass_fields__))

    @property
    def weights(self) -> np.ndarray:
        return np.asarray(self.target_probability / self.propensity)


Estimator = Callable[[OffPolicyLog], float]


def logging_value(log: OffPolicyLog) -> float:
    """The logging policy's own average reward (on-policy)."""
    return float(np.mean(log.reward)) if len(log) else math.nan


def ips(log: OffPolicyLog) -> float:
    return float(np.mean(log.weights * log.reward)) if len(log) else math.nan


def snips(log: OffPolicyLog) -> float:
    total = float(np.sum(log.weights))
    return float(np.sum(log.weights * log.reward)) / total if total > 0 else math.nan


def doubly_robust(log: OffPolicyLog) -> float:
    if not len(log):
        return math.nan
    correction = log.weights * (log.reward - log.predicted_reward)
    return float(np.mean(log.target_value + correction))


def replay(log: OffPolicyLog) -> float:
    return float(np.mean(log.reward[log.matched])) if np.any(log.matched) else math.nan


ESTIMATORS: dict[str, Estimator] = {
    "logging": logging_value,
    "ips": ips,
    "snips": snips,
    "dr": doubly_robust,
    "replay": replay,
}


@dataclass(frozen=True)
class Estimate:
    estimator: str
    value: float
    low: float
    high: float
    rounds: int  # rounds the estimator used (replay: the matched ones)

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def bootstrap_interval(
    log: OffPolicyLog,
    estimator: Estimator,
    *,
    resamples: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of `estimator` over the rounds of `log`."""
    if len(log) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    values = np.array(
        [estimator(log.take(rng.integers(0, len(log), len(log)))) for _ in range(resamples)]
    )
    values = values[~np.isnan(values)]
    if not len(values):
        return math.nan, math.nan
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def estimate_all(
    log: OffPolicyLog,
    *,
    include_replay: bool = True,
    resamples: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> list[Estimate]:
    """Every estimator with its interval; replay only when logging was uniformly random."""
    estimates = []
    for name, estimator in ESTIMATORS.items():
        if name == "replay" and not include_replay:
            continue
        low, high = bootstrap_interval(
            log, estimator, resamples=resamples, confidence=confidence, seed=seed
        )
        used = int(np.sum(log.matched)) if name == "replay" else len(log)
        estimates.append(Estimate(name, estimator(log), low, high, used))
    return estimates


class RunningEstimate:
    """IPS, SNIPS and DR kept as running sums, for a policy scored in shadow in the stream.

    >>> running = RunningEstimate()
    >>> running.update(LoggedRound(1.0, 0.5, 1.0, 0.6, 0.6, True))
    >>> running.update(LoggedRound(0.0, 0.5, 0.0, 0.6, 0.2, False))
    >>> running.values()
    {'rounds': 2, 'logging': 0.5, 'ips': 1.0, 'snips': 1.0, 'dr': 1.0}
    """

    def __init__(self) -> None:
        self.rounds = 0
        self._reward = 0.0
        self._weighted_reward = 0.0
        self._weight = 0.0
        self._doubly_robust = 0.0

    def update(self, logged: LoggedRound) -> None:
        weight = logged.target_probability / logged.propensity
        self.rounds += 1
        self._reward += logged.reward
        self._weighted_reward += weight * logged.reward
        self._weight += weight
        self._doubly_robust += logged.target_value + weight * (
            logged.reward - logged.predicted_reward
        )

    def values(self) -> dict[str, float]:
        if not self.rounds:
            return {"rounds": 0}
        return {
            "rounds": self.rounds,
            "logging": round(self._reward / self.rounds, 6),
            "ips": round(self._weighted_reward / self.rounds, 6),
            "snips": round(self._weighted_reward / self._weight, 6) if self._weight else math.nan,
            "dr": round(self._doubly_robust / self.rounds, 6),
        }
