"""The fast path of the built-in linear models: every candidate of a decision scored at once.

A linear model's logit is Σ weight × value over a candidate's features. `LinearScores` reads a
model's weights, and the posterior variance of each, into arrays over the columns of a feature
set's `features.index.FeatureIndex`, once per model version; a decision whose features come as
columns (`features.feature_set.DecisionParts.columns`) is then scored with a few NumPy
operations over all its candidates, whatever their number: the logit's mean is the row sums of
weights × values, its variance those of variances × values².

It gives what the general path gives (the classifier's `predict_proba_one` on each candidate's
features as a dict) up to the order of a floating-point sum; `tests/pipeline/test_fast_path.py`
holds the two equal.

>>> from features.feature_set import FeatureColumns
>>> from features.index import FeatureIndex
>>> from models.bayesian_logistic import BayesianLogisticRegression
>>> model = BayesianLogisticRegression()
>>> for _ in range(20):
...     model.learn_one({"bias": 1.0, "offer=a": 1.0}, True)
>>> index = FeatureIndex()
>>> columns = FeatureColumns(index.columns(["bias", "offer=a", "bias", "offer=b"]).reshape(2, 2),
...                          np.ones((2, 2)))
>>> mean, variance = LinearScores.of(model, index).logits(columns)
>>> [round(float(m), 9) for m in mean] == [round(model.logit_posterior(
...     {"bias": 1.0, f"offer={o}": 1.0})[0], 9) for o in "ab"]
True
>>> bool(variance[0] < variance[1])  # a has labels, b has only its prior
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from features.feature_set import FeatureColumns
from features.index import FeatureIndex
from models.bayesian_logistic import BayesianLogisticRegression


class LinearScores:
    """A linear model's logits, read at one version of its weights, over the columns of
    `index`.

    `weight` and `variance` give one feature's posterior mean and variance (`variance` None: a
    model without a posterior). Use `LinearScores.of(model, index)` for the built-in models.
    """

    def __init__(
        self,
        index: FeatureIndex,
        weight: Callable[[str], float],
        variance: Callable[[str], float] | None,
        intercept: float,
        intercept_variance: float = 0.0,
    ) -> None:
        self._index = index
        self._weight = weight
        self._variance = variance
        self._intercept = intercept
        self._intercept_variance = intercept_variance
        self._weights = np.zeros(0)
        self._variances = np.zeros(0)
        self._generation = index.generation

    @classmethod
    def of(cls, classifier: Any, index: FeatureIndex) -> LinearScores:
        """For nbo's `BayesianLogisticRegression` or River's `LogisticRegression` as it is now."""
        if isinstance(classifier, BayesianLogisticRegression):
            return cls(
                index,
                classifier.weight_of,
                classifier.variance_of,
                classifier.intercept,
                classifier.intercept_variance,
            )
        weights = classifier._weights  # River's own, as its dot product reads them
        return cls(
            index, lambda name: float(weights.get(name, 0.0)), None, float(classifier.intercept)
        )

    @property
    def has_variance(self) -> bool:
        return self._variance is not None

    def logits(self, columns: FeatureColumns) -> tuple[np.ndarray, np.ndarray]:
        """Each candidate's logit: its mean, and its variance under the posterior (zeros for a
        model without one)."""
        self._read_new_columns()
        values = columns.values
        mean = (self._weights[columns.indices] * values).sum(axis=1) + self._intercept
        if self._variance is None:
            return mean, np.zeros(len(mean))
        variance = (self._variances[columns.indices] * (values * values)).sum(axis=1)
        return mean, variance + self._intercept_variance

    def _read_new_columns(self) -> None:
        """The weights of the columns the index gave since they were last read."""
        if self._generation != self._index.generation:  # the index started afresh
            self._weights, self._variances = np.zeros(0), np.zeros(0)
            self._generation = self._index.generation
        read, names = len(self._weights), self._index.names
        if read == len(names):
            return
        new = names[read:]
        self._weights = np.concatenate([self._weights, [self._weight(name) for name in new]])
        if self._variance is not None:
            variances = [self._variance(name) for name in new]
            self._variances = np.concatenate([self._variances, variances])


def p_of_logits(logits: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-logit), elementwise; beyond ±700 exp would overflow, and P is 0 or 1 there."""
    # np.minimum and np.maximum rather than np.clip: the same values, at a fraction of the cost
    return np.asarray(1.0 / (1.0 + np.exp(-np.minimum(np.maximum(logits, -700.0), 700.0))))


def p_accept_at_mean(
    mean: np.ndarray, variance: np.ndarray, draws: int, optimism: float | np.ndarray = 0.0
) -> np.ndarray:
    """draws × rows P(accept) at each logit's mean raised by `optimism` of its standard
    deviations (one level, or one per draw): what `BayesianLogisticRegression.sample_p_accept`
    draws with a variance scale of 0, from the logits' moments.

    >>> p_accept_at_mean(np.array([0.0, 0.0]), np.array([1.0, 4.0]), 2, np.array([0.0, 1.0]))
    array([[0.5       , 0.5       ],
           [0.73105858, 0.88079708]])
    """
    if np.any(optimism):
        levels = np.asarray(optimism, dtype=float).reshape(-1, 1)
        return p_of_logits(mean + levels * np.sqrt(variance))  # draws × rows, broadcast
    return p_of_logits(np.broadcast_to(mean, (draws, len(mean))))
