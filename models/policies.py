"""Exploration policies: which candidate to put first, and with what probability.

Every policy returns the chosen order and, for each candidate, its *propensity*: the probability
that the policy would have put that candidate first for this decision. The channel shows the
first offer, so the first offer's propensity is what off-policy evaluation needs; the
propensities of one decision sum to at most 1.

>>> import random
>>> policy = EpsilonGreedy(epsilon=0.2, seed=3)
>>> order, propensities = policy.choose([3.0, 1.0, 2.0], [0.3, 0.1, 0.2])
>>> sorted(propensities)  # greedy best: 0.8 + 0.2/3; the others 0.2/3 each
[0.0667, 0.0667, 0.8667]
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from models.names import POLICIES


class Policy(Protocol):
    """What the ranker, the replay and a data scientist's own policy have in common."""

    @property
    def name(self) -> str: ...

    def choose(
        self, scores: Sequence[float], p_accept: Sequence[float]
    ) -> tuple[list[int], list[float]]:
        """The order to show the candidates in, and each one's propensity of being first."""
        ...


def _rounded(values: Sequence[float]) -> list[float]:
    return [round(float(v), 4) for v in values]


def _greedy_order(scores: Sequence[float]) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)


class Greedy:
    """Always the best priority first: propensity 1 for it, 0 for the rest."""

    name = "greedy"

    def choose(
        self, scores: Sequence[float], p_accept: Sequence[float]
    ) -> tuple[list[int], list[float]]:
        order = _greedy_order(scores)
        propensities = [0.0] * len(scores)
        if order:
            propensities[order[0]] = 1.0
        return order, propensities


class EpsilonGreedy:
    """With probability `epsilon`, a uniformly random candidate first; else the best."""

    def __init__(self, epsilon: float = 0.1, seed: int = 0) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError("epsilon must be within [0, 1]")
        self.epsilon = epsilon
        self.seed = seed
        self._rng = random.Random(seed)

    @property
    def name(self) -> str:
        return f"epsilon-greedy({self.epsilon})"

    def choose(
        self, scores: Sequence[float], p_accept: Sequence[float]
    ) -> tuple[list[int], list[float]]:
        order = _greedy_order(scores)
        n = len(scores)
        if n == 0:
            return order, []
        uniform = self.epsilon / n
        propensities = [round(uniform, 4)] * n  # what _rounded gives, without n calls
        propensities[order[0]] = round(uniform + (1.0 - self.epsilon), 4)
        if self._rng.random() < self.epsilon:
            first = self._rng.randrange(n)
            order.remove(first)
            order.insert(0, first)
        return order, propensities


class ThompsonSampling:
    """Samples each P(accept) from a Beta around the model's estimate, ranks by the samples.

    The Beta's strength `prior_strength` says how sure the model is; lower explores more.
    Propensities are estimated from `draws` extra samples (the chosen order is one more).
    """

    def __init__(self, prior_strength: float = 20.0, draws: int = 200, seed: int = 0) -> None:
        self.prior_strength = prior_strength
        self.draws = draws
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    @property
    def name(self) -> str:
        return f"thompson({self.prior_strength})"

    def choose(
        self, scores: Sequence[float], p_accept: Sequence[float]
    ) -> tuple[list[int], list[float]]:
        n = len(scores)
        if n == 0:
            return [], []
        p = np.clip(np.asarray(p_accept, dtype=float), 1e-4, 1 - 1e-4)
        # the non-probability part of each score (value now × lever) scales the sampled P
        scale = np.divide(np.asarray(scores, dtype=float), p)
        alpha, beta = p * self.prior_strength + 1.0, (1.0 - p) * self.prior_strength + 1.0
        samples = self._rng.beta(alpha, beta, size=(self.draws + 1, n)) * scale
        winners = samples.argmax(axis=1)
        order = _greedy_order(list(samples[0]))
        counts = np.bincount(winners[1:], minlength=n)
        return order, _rounded((counts / self.draws).tolist())


def make_policy(name: str, seed: int = 0, epsilon: float = 0.1) -> Policy:
    if name == "greedy":
        return Greedy()
    if name == "epsilon-greedy":
        return EpsilonGreedy(epsilon=epsilon, seed=seed)
    if name == "thompson":
        return ThompsonSampling(seed=seed)
    raise ValueError(f"unknown policy {name!r}; choose one of {', '.join(POLICIES)}")
