"""The online ranker: P(accept) from any River classifier, priority from time value and levers.

Behaves like a River estimator: `learn_one(x, y)`, `predict_one(x)` (P(accept)) and `rank`.
Hyper-parameters are `__init__` arguments stored under the same names; learned state is
`_`-prefixed.

>>> ranker = OnlineRanker(model="logistic", seed=1)
>>> for _ in range(50):
...     ranker.learn_one({"bias": 1.0, "category=card": 1.0}, True)
...     ranker.learn_one({"bias": 1.0, "category=loan": 1.0}, False)
>>> ranker.predict_one({"bias": 1.0, "category=card": 1.0}) > 0.5
True
>>> ranker.version
'logistic-100'
>>> [c.key for c in ranker.rank([
...     Candidate("loan", {"bias": 1.0, "category=loan": 1.0}, value_now=100.0),
...     Candidate("card", {"bias": 1.0, "category=card": 1.0}, value_now=100.0),
... ])]
['card', 'loan']
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from river import forest, linear_model, naive_bayes, optim

from models.names import DEFAULT_MODEL, MODELS

# A single Hoeffding tree is not offered: with sparse one-hot crosses it never split in our
# tests (River 0.26), so it would rank by its prior forever.
# Trees cannot split on a feature that is absent from a dict, and features here are sparse
# one-hot crosses: for them, every feature seen so far is given, 0.0 where absent.
_NEEDS_DENSE = frozenset({"adaptive_forest"})


def make_classifier(name: str, seed: int, learning_rate: float = 0.15) -> Any:
    """A fresh River binary classifier by name (see `MODELS`)."""
    if name == "logistic":
        return linear_model.LogisticRegression(optimizer=optim.SGD(learning_rate), l2=1e-5)
    if name == "adaptive_forest":
        return forest.ARFClassifier(n_models=10, seed=seed)
    if name == "naive_bayes":
        return naive_bayes.BernoulliNB()
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")


@dataclass(slots=True)
class Candidate:
    """One offer to rank: its features, value now and business lever.

    `shared_features` are features it has in common with other candidates of the same ranking
    (one read-only object for all of them, see `features.offer_features`): a linear model
    scores them once per `rank`, not once per candidate. A feature is in one part, not both.
    """

    key: str
    features: dict[str, float]
    value_now: float
    lever: float = 1.0
    shared_features: dict[str, float] = field(default_factory=dict)
    p_accept: float = field(default=0.0, init=False)
    score: float = field(default=0.0, init=False)
    tie_break: float = field(default=0.0, init=False)  # between equal scores: P × value

    def all_features(self) -> dict[str, float]:
        """Every feature of the candidate, as one new dict (what the model learns from)."""
        return {**self.shared_features, **self.features}


_PRIORITY = operator.attrgetter("score", "tie_break")


class OnlineRanker:
    """Ranks candidates by priority = P(accept) × value now × business lever."""

    def __init__(
        self, model: str = DEFAULT_MODEL, learning_rate: float = 0.15, seed: int = 0
    ) -> None:
        self.model = model
        self.learning_rate = learning_rate
        self.seed = seed
        self._classifier = make_classifier(model, seed, learning_rate)
        self._n_learned = 0
        self._n_positive = 0
        self._feature_names: dict[str, float] = {}  # all zeros; for models that need dense x

    @property
    def version(self) -> str:
        """Changes with every label learned: a decision records the version that made it."""
        return f"{self.model}-{self._n_learned}"

    @property
    def n_learned(self) -> int:
        return self._n_learned

    def _dense(self, x: dict[str, float]) -> dict[str, float]:
        if self.model not in _NEEDS_DENSE:
            return x
        return {**self._feature_names, **x}

    def learn_one(self, x: dict[str, float], y: bool) -> None:
        if self.model in _NEEDS_DENSE:
            for name in x.keys() - self._feature_names.keys():
                self._feature_names[name] = 0.0
        self._classifier.learn_one(self._dense(x), y)
        self._n_learned += 1
        self._n_positive += int(y)

    def predict_one(self, x: dict[str, float]) -> float:
        """P(accept) for a shown offer with features `x`."""
        proba = self._classifier.predict_proba_one(self._dense(x))
        if not proba:  # a tree with nothing learned yet
            return 0.5
        return float(proba.get(True, 0.0))

    def rank(self, candidates: Iterable[Candidate]) -> list[Candidate]:
        """Score every candidate and return them best first (ties: higher P × value)."""
        p_accept = self._linear_p_accept() or self._p_accept
        ranked = list(candidates)
        for candidate in ranked:
            p = candidate.p_accept = p_accept(candidate)
            candidate.score = p * candidate.value_now * candidate.lever
            candidate.tie_break = p * max(candidate.value_now, 0.0)
        ranked.sort(key=_PRIORITY, reverse=True)
        return ranked

    def _p_accept(self, candidate: Candidate) -> float:
        return self.predict_one(candidate.all_features())

    def _linear_p_accept(self) -> Callable[[Candidate], float] | None:
        """For a logistic model: P(accept) that scores each distinct `shared_features` object
        once per ranking. It is River's own `predict_proba_one` (the loss's mean function of
        weights · x + intercept) with the dot product split in two; a test holds them equal."""
        classifier = self._classifier
        if not isinstance(classifier, linear_model.LogisticRegression):
            return None
        weights, intercept = classifier._weights, classifier.intercept
        mean = classifier.loss.mean_func
        # keyed by id(): each shared dict outlives this ranking, as the candidates hold it
        shared_logits: dict[int, float] = {}

        def p_accept(candidate: Candidate) -> float:
            shared = candidate.shared_features
            logit = shared_logits.get(id(shared))
            if logit is None:
                logit = shared_logits[id(shared)] = weights.dot(shared) + intercept
            return float(mean(logit + weights.dot(candidate.features)))

        return p_accept

    def weights(self) -> dict[str, float]:
        """The linear model's feature weights ({} for models without weights)."""
        return {name: float(w) for name, w in getattr(self._classifier, "weights", {}).items()}

    def contributions(self, x: dict[str, float], top: int = 3) -> list[tuple[str, float]]:
        """The features that moved P(accept) most for `x` (linear models only; else [])."""
        classifier = self._classifier
        weight: Callable[[str, float], Any]
        if isinstance(classifier, linear_model.LogisticRegression):
            weight = classifier._weights.get  # `.weights` would copy every weight
        else:
            weight = getattr(classifier, "weights", {}).get
        parts = [(name, float(weight(name, 0.0)) * value) for name, value in x.items()]
        parts.sort(key=lambda part: abs(part[1]), reverse=True)
        return [(name, round(value, 4)) for name, value in parts[:top] if value != 0.0]
