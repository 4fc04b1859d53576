"""Exploration policies: which candidate to put first, and with what probability.

Every policy is a probability distribution over which candidate goes first. `choose` draws the
first candidate from it and orders the rest by the model's priority; the *propensity* logged for
each candidate is its exact probability of being first for this decision (nothing is rounded:
one decision's propensities sum to 1, and the offer put first never has propensity 0). The
channel shows the first offer, so that is what off-policy evaluation needs.

A policy sees a `Ranking`: per candidate the model's P(accept) and what an acceptance is worth
now (value now × lever), and, from a model with a posterior, draws of P(accept) from it.

>>> ranking = Ranking(p_accept=[0.3, 0.1, 0.2], worth=[10.0, 10.0, 10.0])
>>> order, propensities = EpsilonGreedy(epsilon=0.3, seed=3).choose(ranking)
>>> [round(q, 4) for q in propensities]  # the best: 0.7 + 0.3/3; the others 0.3/3 each
[0.8, 0.1, 0.1]
>>> order[1:] == sorted(order[1:], key=lambda i: -ranking.scores[i])
True
"""

from __future__ import annotations

import abc
import inspect
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from features.references import import_reference
from models.names import POLICIES

logger = logging.getLogger(__name__)

# draws × candidates samples of P(accept) from the model's posterior, given a random generator,
# the number of draws, a factor on the posterior's variance, and the optimism: how many of its
# posterior standard deviations each logit is raised by (one level, or one per draw)
PosteriorSampler = Callable[[np.random.Generator, int, float, float | np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Ranking:
    """What a policy sees of one decision's candidates (in the ranker's order, best first)."""

    p_accept: Sequence[float] | np.ndarray
    worth: Sequence[float] | np.ndarray  # value now × lever: what an acceptance earns
    sample_p_accept: PosteriorSampler | None = None  # None: the model has no posterior
    labels_learned: int = 0  # by the model: how much it knows
    scores: np.ndarray = field(init=False, repr=False)  # the priority: P(accept) × worth

    def __post_init__(self) -> None:
        p, worth = np.asarray(self.p_accept, dtype=float), np.asarray(self.worth, dtype=float)
        object.__setattr__(self, "p_accept", p)
        object.__setattr__(self, "worth", worth)
        object.__setattr__(self, "scores", p * worth)

    def __len__(self) -> int:
        return len(self.scores)


class Policy(Protocol):
    """What the ranker, the replay and a data scientist's own policy have in common."""

    @property
    def name(self) -> str: ...

    def choose(self, ranking: Ranking) -> tuple[list[int], list[float]]:
        """The order to show the candidates in, and each one's probability of being first."""
        ...


def _best(scores: np.ndarray) -> np.ndarray:
    """Greedy's distribution: the best score first; exact ties share it evenly (an input order
    is no reason to prefer one of them)."""
    best = scores == scores.max()
    return np.asarray(best / best.sum())


class ExplorationPolicy(abc.ABC):
    """A policy as a distribution over the first candidate: subclasses give the distribution
    (`_first_probabilities`), `choose` draws from it with the policy's own seeded generator."""

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """What decisions record as their policy."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def choose(self, ranking: Ranking) -> tuple[list[int], list[float]]:
        if len(ranking) == 0:
            return [], []
        probabilities = self._first_probabilities(ranking)
        cumulative = np.cumsum(probabilities)
        # an offer is first when the uniform draw falls in its share (one with none never is)
        first = int(np.searchsorted(cumulative, self._rng.random() * cumulative[-1], "right"))
        # the rest by priority; between equal priorities the ranker's order (best estimate)
        by_priority = np.argsort(-ranking.scores, kind="stable")
        return [first, *by_priority[by_priority != first].tolist()], probabilities.tolist()

    @abc.abstractmethod
    def _first_probabilities(self, ranking: Ranking) -> np.ndarray:
        """Each candidate's probability of being put first (they sum to 1)."""


class Greedy(ExplorationPolicy):
    """The best priority first (exact ties shared evenly): no exploration."""

    name = "greedy"

    def _first_probabilities(self, ranking: Ranking) -> np.ndarray:
        return _best(ranking.scores)


class EpsilonGreedy(ExplorationPolicy):
    """With probability `epsilon`, a uniformly random candidate first; else the best."""

    def __init__(self, epsilon: float = 0.1, seed: int = 0) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError("epsilon must be within [0, 1]")
        super().__init__(seed)
        self.epsilon = epsilon

    @property
    def name(self) -> str:
        return f"epsilon-greedy({self.epsilon})"

    def _first_probabilities(self, ranking: Ranking) -> np.ndarray:
        n = len(ranking)
        return np.asarray((1.0 - self.epsilon) * _best(ranking.scores) + self.epsilon / n)


class SquareCB(ExplorationPolicy):
    """Inverse gap weighting (Foster and Rakhlin 2020): a candidate whose priority is a gap g
    below the best (as a share of the best) is put first with probability 1 / (K + gamma·g),
    the best takes the rest. Close seconds are tried often, clear losers seldom. gamma grows as
    the model learns, `gamma_scale` × √(labels learned), the paper's √T: the more the model
    knows, the less it explores.

    >>> ranking = Ranking([0.5, 0.25, 0.0], [1, 1, 1], labels_learned=4)  # gamma = 10 × √4
    >>> _, propensities = SquareCB(gamma_scale=10.0).choose(ranking)
    >>> [round(q, 3) for q in propensities]  # the rest, 1 / (3 + 20 × 0.5), 1 / (3 + 20 × 1)
    [0.88, 0.077, 0.043]
    """

    def __init__(self, gamma_scale: float = 30.0, seed: int = 0) -> None:
        if gamma_scale < 0:
            raise ValueError("gamma_scale must be at least 0")
        super().__init__(seed)
        self.gamma_scale = gamma_scale

    @property
    def name(self) -> str:
        return f"squarecb({self.gamma_scale:g})"

    def _first_probabilities(self, ranking: Ranking) -> np.ndarray:
        scores, n = ranking.scores, len(ranking)
        top = scores.max()
        if top <= 0:
            return np.full(n, 1.0 / n)
        gamma = self.gamma_scale * math.sqrt(max(ranking.labels_learned, 1))
        best = int(np.argmax(scores))
        probabilities = 1.0 / (n + gamma * (top - scores) / top)
        probabilities[best] = 0.0
        probabilities[best] = 1.0 - probabilities.sum()
        return np.asarray(probabilities)


class _SampledWinners(ExplorationPolicy):
    """Puts first the winner of one of `draws` sampled rankings, picked at random: each
    candidate's probability of being first is exactly its share of the draws' winners."""

    def __init__(self, draws: int, seed: int) -> None:
        if draws < 1:
            raise ValueError("draws must be at least 1")
        super().__init__(seed)
        self.draws = draws

    def _first_probabilities(self, ranking: Ranking) -> np.ndarray:
        sampled = self._sample_scores(ranking)
        # a draw's ties go to a random one of them, not to the lowest index
        jitter = self._rng.random(sampled.shape)
        jitter *= 1e-12
        jitter *= np.abs(sampled) + 1e-300
        winners = np.argmax(sampled + jitter, axis=1)
        return np.asarray(np.bincount(winners, minlength=len(ranking)) / self.draws)

    @abc.abstractmethod
    def _sample_scores(self, ranking: Ranking) -> np.ndarray:
        """draws × candidates sampled priorities."""


class _FromPosterior(_SampledWinners):
    """A policy whose draws come from the model's posterior over its weights. A model without
    one (River's logistic regression, naive Bayes, a forest) gives no draws: the decision is
    then made with `SquareCB`, and the policy's name says so."""

    def __init__(self, draws: int, seed: int) -> None:
        super().__init__(draws, seed)
        self._without_posterior = SquareCB(seed=seed)
        self._warned = False
        self._last_without_posterior = False

    @property
    def name(self) -> str:
        """The policy's own name, or what the last decision was made with when its model had no
        posterior."""
        if self._last_without_posterior:
            return f"{self._without_posterior.name} ({self._name}: the model has no posterior)"
        return self._name

    @property
    @abc.abstractmethod
    def _name(self) -> str:
        """The policy's name with its settings."""

    def _first_probabilities(self, ranking: Ranking) -> np.ndarray:
        self._last_without_posterior = ranking.sample_p_accept is None
        if ranking.sample_p_accept is None:
            if not self._warned:
                logger.warning(
                    "%s: the model has no posterior over its weights; deciding with %s",
                    self._name,
                    self._without_posterior.name,
                )
                self._warned = True
            return self._without_posterior._first_probabilities(ranking)
        return super()._first_probabilities(ranking)

    def _sample_scores(self, ranking: Ranking) -> np.ndarray:
        assert ranking.sample_p_accept is not None
        return np.asarray(self._sample_p_accept(ranking.sample_p_accept) * ranking.worth)

    @abc.abstractmethod
    def _sample_p_accept(self, sample: PosteriorSampler) -> np.ndarray:
        """draws × candidates P(accept), from the posterior's sampler."""


class RandomizedUCB(_FromPosterior):
    """Optimism in the face of uncertainty, randomised (RandUCB: Vaswani, Mehrabian, Durand and
    Kveton, AISTATS 2020). Each candidate's logit is read at its posterior mean plus a number of
    its posterior standard deviations, the *optimism*, drawn at random per draw between
    `min_optimism` and `max_optimism` and the same for every candidate of the draw; the best is
    put first. A candidate the model knows little of (a new offer, a customer unlike those seen)
    has a wide posterior and is tried while it might be the best; one it knows well is judged on
    its estimate. Drawing the optimism makes the decision random, so that it has propensities
    other policies can be evaluated with off-policy, at little cost: only offers that are the
    best at some level of optimism in the range are ever put first.

    Bietti, Agarwal and Langford's bake-off found optimism under uncertainty (their
    RegCB-optimistic) the best exploration overall, and greedy a close second. On nbo's
    (`make bakeoff`; swept over 60 seeds) 0.5 to 1.5 does better than greedy on both data sets;
    Thompson sampling, whose draws move every weight and so explore what the diagonal posterior
    overstates (`ThompsonSampling`), does as well on digits and no better than greedy on
    segment. A fixed 1 did about as well, but leaves nothing else to evaluate off-policy; 0 to 2
    and 0 to 1.5 did a little less well.

    A posterior's sampler, at its mean (variance scale 0) and raised by each draw's optimism,
    for a known offer (logit 0 ± 0.1) and a new one (-0.3 ± 0.5): the new one is the better
    above 0.75 standard deviations, so it is put first about three times in four (here it won
    41 of the 50 draws).

    >>> mean, std = np.array([0.0, -0.3]), np.array([0.1, 0.5])
    >>> def sample(rng, draws, variance_scale, optimism):
    ...     return 1 / (1 + np.exp(-(mean + np.reshape(optimism, (-1, 1)) * std)))
    >>> ranking = Ranking(1 / (1 + np.exp(-mean)), [1.0, 1.0], sample_p_accept=sample)
    >>> RandomizedUCB(seed=1).choose(ranking)  # the order, and each one's propensity
    ([1, 0], [0.18, 0.82])
    """

    def __init__(
        self,
        min_optimism: float = 0.5,
        max_optimism: float = 1.5,
        draws: int = 50,
        seed: int = 0,
    ) -> None:
        if not 0.0 <= min_optimism <= max_optimism:
            raise ValueError("need 0 <= min_optimism <= max_optimism")
        super().__init__(draws, seed)
        self.min_optimism = min_optimism
        self.max_optimism = max_optimism

    @property
    def _name(self) -> str:
        return f"randomized-ucb({self.min_optimism:g}-{self.max_optimism:g})"

    def _sample_p_accept(self, sample: PosteriorSampler) -> np.ndarray:
        levels = self._rng.uniform(self.min_optimism, self.max_optimism, self.draws)
        return sample(self._rng, self.draws, 0.0, levels)


class ThompsonSampling(_FromPosterior):
    """Thompson sampling from the model's posterior over its weights (see
    `models.bayesian_logistic`): each draw is one plausible model, the offer it ranks best is put
    first. What the model is unsure of (a new offer) wins some draws until its labels say what it
    is worth; what it knows wins as often as it is the best.

    `variance_scale` narrows (< 1) or widens (> 1) the posterior. The diagonal approximation
    treats the weights as independent, so the variance of a logit is a sum over every feature of
    the candidate, and with many correlated features (the bake-off's pixels) it is far wider
    than the model's real doubt: sampled as it is, the policy explores the hopeless. 0.01 did
    best on the bake-off (0.005 to 1 tried before the model's rank-one update, 0.002 to 0.05
    after) and, in the closed loop, still finds a new offer.
    `draws`: the first offer's probability is its share of the draws' winners, so it is exact
    with any number; more only make it finer (50: at least 0.02 for the offer put first).
    """

    def __init__(self, draws: int = 50, variance_scale: float = 0.01, seed: int = 0) -> None:
        super().__init__(draws, seed)
        self.variance_scale = variance_scale

    @property
    def _name(self) -> str:
        return f"thompson({self.variance_scale:g})"

    def _sample_p_accept(self, sample: PosteriorSampler) -> np.ndarray:
        return sample(self._rng, self.draws, self.variance_scale, 0.0)


class BetaAroundEstimate(_SampledWinners):
    """Samples each P(accept) from a Beta centred on the model's estimate, as strong as
    `prior_strength` labels, whatever the model has learned. A heuristic kept for comparison:
    its uncertainty is the same for an offer seen a million times as for a new one."""

    def __init__(self, prior_strength: float = 20.0, draws: int = 200, seed: int = 0) -> None:
        super().__init__(draws, seed)
        self.prior_strength = prior_strength

    @property
    def name(self) -> str:
        return f"beta-around-estimate({self.prior_strength:g})"

    def _sample_scores(self, ranking: Ranking) -> np.ndarray:
        p = np.clip(ranking.p_accept, 1e-6, 1 - 1e-6)
        alpha, beta = p * self.prior_strength + 1.0, (1.0 - p) * self.prior_strength + 1.0
        n = len(ranking)
        return np.asarray(self._rng.beta(alpha, beta, size=(self.draws, n)) * ranking.worth)


def make_policy(name: str, seed: int = 0, epsilon: float = 0.1) -> Policy:
    """The exploration policy a setting names (`models.names.POLICIES`), seeded; `epsilon` goes
    to the policies that take one.

    >>> make_policy("epsilon-greedy", seed=3, epsilon=0.2).epsilon
    0.2
    """
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; choose one of {', '.join(POLICIES)}")
    policy_class = import_reference(POLICIES[name])
    takes_epsilon = "epsilon" in inspect.signature(policy_class).parameters
    policy: Policy = policy_class(seed=seed, **({"epsilon": epsilon} if takes_epsilon else {}))
    return policy
