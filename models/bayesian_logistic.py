"""Logistic regression that knows how sure it is of each weight.

A Gaussian posterior over the weights, diagonal, kept by the Laplace approximation and updated
online, one label at a time (Chapelle and Li, "An Empirical Evaluation of Thompson Sampling",
NIPS 2011, algorithm 3 with batches of one). Each weight has a mean and a precision. A label
is one Newton step on the posterior along the label's features, taken exactly for the diagonal
prior (a rank-one update, Sherman-Morrison): the logit of that row moves by error × v / (1 +
p(1 - p)·v), v its variance before the label, and each weight takes its share of the step by
its variance, so a weight that has seen little moves fast and one that has seen much moves
little; each variance shrinks by its share of what the label taught. Moving every weight by its
own Newton step instead would move the row's logit by the error times the sum of its features'
variances, several times too far when a row has many features. A feature never seen (a new
offer's identity) has the prior: mean 0, precision `prior_precision`, wide enough for
exploration to try it until the labels say what it is.

>>> model = BayesianLogisticRegression()
>>> for i in range(200):
...     model.learn_one({"offer=a": 1.0}, i % 5 != 0)  # accepted 4 times in 5
...     model.learn_one({"offer=b": 1.0}, i % 10 == 0)  # once in 10
>>> model.predict_one({"offer=a": 1.0}), model.predict_one({"offer=b": 1.0})
(True, False)
>>> round(model.predict_proba_one({"offer=a": 1.0})[True], 2)  # 0.8 less the prior's pull
0.74
>>> [round(v, 2) for v in model.logit_posterior({"offer=a": 1.0})]  # mean, variance
[1.05, 0.03]
>>> [round(v, 2) for v in model.logit_posterior({"offer=new": 1.0})]  # never seen: the prior
[-0.15, 0.14]

How wide a weight's prior is, is learned too (empirical Bayes, one prior per *group*: the
weights of features about the same fields, `feature_group`). Every `relevance_every` labels
each group's prior precision is re-estimated from its weights' posteriors (an EM step: one
over the mean of mean² + variance), and each weight's posterior is moved to the new prior
(what its labels taught is kept). A field the labels never separate (say, a tenure band when
acceptance does not depend on it) narrows to near nothing and stops adding noise to scores
and to exploration; a field that matters widens, so its weights move faster. This is what lets
a feature set cross every customer field with every offer without hurting a world where most
of those fields mean nothing.

The online update sees each label once, in the order labels come, and in a closed loop that order
is far from random: what the model liked lately is what it hears about next, and a weight's early
steps were taken from estimates the later labels overturned. So every `refit_every` labels the
weights are also fit to the labels of the current *window* all at once: each mean becomes the MAP
of the window's labels under the posterior the window began from (L-BFGS, warm-started from the
online means), and each precision that prior's plus the curvature the window's labels give it at
the MAP: Chapelle and Li's algorithm 3 with the window as its batch, the online update filling in
between. Once a window holds `refit_window` labels its posterior is the prior of the next one. A
pickled (or copied) model leaves its window out: it goes on from its posterior, as from the end of
a window, so a snapshot stays as small as its weights.

The same labels in two orders (20 refusals, then 80 accepts; or the accepts first): online only,
the order decides; refit, it does not.

>>> rows = [({"offer=a": 1.0}, i >= 20) for i in range(100)]
>>> for refit_every in (0, 100):
...     first, last = (BayesianLogisticRegression(refit_every=refit_every) for _ in range(2))
...     for x, y in rows:
...         first.learn_one(x, y)
...     for x, y in reversed(rows):
...         last.learn_one(x, y)
...     print([round(m.predict_proba_one({"offer=a": 1.0})[True], 2) for m in (first, last)])
[0.85, 0.67]
[0.75, 0.75]
"""

from __future__ import annotations

import collections
import functools
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from river import base, utils

if TYPE_CHECKING:
    from scipy import sparse


def sigmoid(z: float) -> float:
    """1 / (1 + e^-z) without clipping: distinct logits down to -745 keep distinct
    probabilities (River's own sigmoid returns exactly 0 below -30 and 1 above 30).

    >>> sigmoid(0.0), sigmoid(-100.0) > sigmoid(-400.0) > 0.0
    (0.5, True)
    """
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@functools.lru_cache(maxsize=65536)
def feature_group(name: str) -> str:
    """The fields a feature is about, without their values: the features of a group share a
    prior (nbo's features are named `field=value` or `field~band`, crossed with `×`).

    >>> [feature_group(name) for name in ("region=north×offer=card-02", "income~21", "bias")]
    ['region×offer', 'income', 'bias']
    """
    return "×".join(part.split("=", 1)[0].split("~", 1)[0] for part in name.split("×"))


# A group's prior is re-estimated only from this many weights or more: fewer say little of how
# spread the group's weights are (and a single feature, as `bias`, is no group at all).
MIN_GROUP_SIZE = 5
# How far a group's prior precision may move from `prior_precision`, down and up: wide enough
# to silence a field that means nothing, never so wide that one group's few labels run away.
WIDEST, NARROWEST = 4.0, 50.0


class BayesianLogisticRegression(base.Classifier):
    """Binary logistic regression with a diagonal Gaussian posterior over its weights.

    Parameters
    ----------
    prior_precision
        Precision (1 / variance) of every weight before any label: the L2 penalty of the MAP
        estimate, the size of a new weight's first steps (about 1 / precision), and how wide
        exploration tries a feature it has not seen yet. 8: chosen on the contextual-bandit
        bake-off for the default exploration (`make bakeoff`; 3 to 20 tried, 20 and 60 seeds)
        and checked in nbo's closed loop (the README's figures). The precision a weight starts
        from until its group's own is learned (see `relevance_every`).
    relevance_every
        Every this many labels, each feature group's prior precision is re-estimated from its
        weights (between `prior_precision` / 4 and × 50); 0: every weight keeps
        `prior_precision`.
    refit_every
        Every this many labels, the weights are fit to the current window's labels at once; 0
        (the default): never, the model is only updated online. The built-in model
        `bayesian_logistic_refit` refits every 1,000 (see `docs/data-science.md` for what it
        gains and costs in the closed loop).
    refit_window
        How many labels a window holds before it becomes the prior of the next one: what a
        refit reads at most, and so what the model keeps in memory besides its weights.
    offsets
        Features added to the logit as they are: weight 1, no variance, never learned. A prior
        the other weights correct from the labels (the default features' documented time-value
        curve, `features.offer_features.DOCUMENTED_CURVE`).

    An offset moves every P(accept) it is in, and the labels move the other weights only:

    >>> model = BayesianLogisticRegression(offsets=("curve",))
    >>> round(model.predict_proba_one({"curve": -2.0})[True], 3)  # 1 / (1 + e²)
    0.119
    >>> for _ in range(50):  # an offer accepted whatever the curve says
    ...     model.learn_one({"curve": -2.0, "evergreen": 1.0}, True)
    >>> model.weight_of("curve"), model.variance_of("curve")
    (1.0, 0.0)
    >>> round(model.predict_proba_one({"curve": -2.0, "evergreen": 1.0})[True], 2)
    0.82
    """

    def __init__(
        self,
        prior_precision: float = 8.0,
        relevance_every: int = 250,
        refit_every: int = 0,
        refit_window: int = 20_000,
        offsets: tuple[str, ...] = (),
    ) -> None:
        if prior_precision <= 0:
            raise ValueError("prior_precision must be positive")
        if relevance_every < 0:
            raise ValueError("relevance_every must be 0 (never) or positive")
        if refit_every < 0 or refit_window < refit_every:
            raise ValueError("refit_every must be 0 (never) or positive, refit_window no less")
        self.prior_precision = prior_precision
        self.relevance_every = relevance_every
        self.refit_every = refit_every
        self.refit_window = refit_window
        self.offsets = tuple(offsets)
        self._group_precision: dict[str, float] = {}  # learned priors, by `feature_group`
        self._labels = 0
        # River's VectorDict: its dot product, the hot path of scoring, is native code
        self._mean: utils.VectorDict[str, float] = utils.VectorDict()
        self._precision: dict[str, float] = {}
        self.intercept = 0.0
        self._intercept_precision = prior_precision
        for name in self.offsets:  # in the mean, so the dot product adds them; never learned
            self._mean[name] = 1.0
        self._begin_window()

    def _begin_window(self) -> None:
        """A new window of labels, whose prior is the posterior as it is now (none for a model
        that never refits)."""
        self._window = _Window()
        self._window_prior = (
            _Posterior(
                dict(self._mean), dict(self._precision), self.intercept, self._intercept_precision
            )
            if self.refit_every
            else None
        )

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        del state["_window"], state["_window_prior"]  # see the module's docstring
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        # pickled before priors were learned or windows refit: it goes on as it was trained
        state.setdefault("relevance_every", 0)
        state.setdefault("_group_precision", {})
        state.setdefault("_labels", 0)
        state.setdefault("refit_every", 0)
        state.setdefault("refit_window", 0)
        state.setdefault("offsets", ())
        self.__dict__.update(state)
        self._begin_window()

    @property
    def labels_in_window(self) -> int:
        """The labels the next refit reads (since the window began)."""
        return len(self._window)

    @property
    def weights(self) -> dict[str, float]:
        """The posterior mean of each weight (what `OnlineRanker.contributions` explains by)."""
        return dict(self._mean)

    def dot(self, x: Mapping[str, float]) -> float:
        """Σ mean weight × feature, without the intercept."""
        return float(self._mean.dot(x if isinstance(x, dict) else dict(x)))

    def prior_of(self, name: str) -> float:
        """The prior precision of the feature `name`'s weight: its group's, once learned."""
        if not self._group_precision:
            return self.prior_precision
        return self._group_precision.get(feature_group(name), self.prior_precision)

    @property
    def group_priors(self) -> dict[str, float]:
        """The prior precision learned for each feature group so far (a big one: a field that
        does not matter)."""
        return dict(self._group_precision)

    def weight_of(self, name: str) -> float:
        """The posterior mean of the feature `name`'s weight (0 for one never seen, 1 for an
        offset)."""
        return float(self._mean.get(name, 0.0))

    def variance_of(self, name: str) -> float:
        """The posterior variance of the feature `name`'s weight (its prior's for one never
        seen, 0 for an offset)."""
        if name in self.offsets:
            return 0.0
        return 1.0 / (self._precision.get(name) or self.prior_of(name))

    @property
    def intercept_variance(self) -> float:
        return 1.0 / self._intercept_precision

    def logit_posterior(self, x: Mapping[str, float]) -> tuple[float, float]:
        """Mean and variance of the logit for `x` under the posterior."""
        variance = 1.0 / self._intercept_precision + sum(
            value * value * self.variance_of(name) for name, value in x.items()
        )
        return self.dot(x) + self.intercept, variance

    def learn_one(self, x: Mapping[str, float], y: bool) -> None:  # type: ignore[override]
        p = sigmoid(self.dot(x) + self.intercept)
        error, curvature = p - float(bool(y)), max(p * (1.0 - p), 1e-6)
        precision, prior_of, offsets = self._precision, self.prior_of, self.offsets
        active = [
            (name, value, precision.get(name) or prior_of(name))
            for name, value in x.items()
            if value and name not in offsets
        ]
        logit_variance = 1.0 / self._intercept_precision + sum(
            value * value / q for _, value, q in active
        )
        step = 1.0 / (1.0 + curvature * logit_variance)  # the rank-one update's shrink factor
        self.intercept, self._intercept_precision = self._updated(
            self.intercept, 1.0, self._intercept_precision, error * step, curvature * step
        )
        mean = self._mean
        for name, value, q in active:
            mean[name], precision[name] = self._updated(
                mean.get(name, 0.0), value, q, error * step, curvature * step
            )
        self._labels += 1
        if self.refit_every:
            offset = sum(x.get(name, 0.0) for name in offsets)
            self._window.add([(name, value) for name, value, _ in active], bool(y), offset)
            if len(self._window) % self.refit_every == 0:
                self._refit()
                if len(self._window) >= self.refit_window:
                    self._begin_window()
        if self.relevance_every and self._labels % self.relevance_every == 0:
            self._learn_priors()

    def _refit(self) -> None:
        """The window's labels at once: the means their MAP under the window's prior, the
        precisions that prior's plus the labels' curvature at the MAP (the intercept is the
        design's last column)."""
        # here, not at the top: scipy weighs tens of MB, and only a model that refits needs it
        from scipy import optimize, sparse, special

        prior, names = self._window_prior, list(self._window.columns)
        assert prior is not None  # a window has a prior whenever the model refits
        design = sparse.hstack(
            [self._window.matrix(), np.ones((len(self._window), 1))], format="csr"
        )
        y = np.array(self._window.labels, dtype=float)
        prior_mean = np.array([prior.mean.get(name, 0.0) for name in names] + [prior.intercept])
        prior_precision = np.array(
            [prior.precision.get(name) or self.prior_of(name) for name in names]
            + [prior.intercept_precision]
        )

        offset = np.array(self._window.offsets)

        def loss_and_gradient(w: np.ndarray) -> tuple[float, np.ndarray]:
            z, away = design @ w + offset, w - prior_mean
            loss = np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * away @ (prior_precision * away)
            return float(loss), design.T @ (special.expit(z) - y) + prior_precision * away

        start = np.array([self._mean.get(name, 0.0) for name in names] + [self.intercept])
        w = optimize.minimize(loss_and_gradient, start, jac=True, method="L-BFGS-B").x
        p = special.expit(design @ w + offset)
        precision = prior_precision + design.multiply(design).T @ (p * (1.0 - p))
        for column, name in enumerate(names):
            self._mean[name], self._precision[name] = float(w[column]), float(precision[column])
        self.intercept, self._intercept_precision = float(w[-1]), float(precision[-1])

    def _learn_priors(self) -> None:
        """One EM step on each group's prior precision, and each weight moved to its new prior.

        A weight's posterior precision is what its labels taught plus its prior's; the first part
        stays, the prior's is swapped (with a zero-mean prior, the mean scales by old / new
        precision)."""
        members: dict[str, list[str]] = collections.defaultdict(list)
        for name in self._precision:
            members[feature_group(name)].append(name)
        mean, precision = self._mean, self._precision
        low, high = self.prior_precision / WIDEST, self.prior_precision * NARROWEST
        for group, names in members.items():
            if len(names) < MIN_GROUP_SIZE:
                continue
            spread = sum(mean.get(n, 0.0) ** 2 + 1.0 / precision[n] for n in names) / len(names)
            before = self._group_precision.get(group, self.prior_precision)
            after = min(max(1.0 / spread, low), high)
            self._group_precision[group] = after
            _swap_prior(mean, precision, names, before, after)
            if self._window_prior is not None:  # or the window's refit would bring it back
                window = self._window_prior
                _swap_prior(window.mean, window.precision, names, before, after)

    @staticmethod
    def _updated(
        mean: float, value: float, precision: float, error_step: float, curvature_step: float
    ) -> tuple[float, float]:
        """One weight's share of a label's rank-one update: its mean moves against the error by
        its variance, its variance shrinks by its share of the label's curvature (it stays
        positive: the share is under 1)."""
        variance = 1.0 / precision
        shrunk = variance * (1.0 - curvature_step * value * value * variance)
        return mean - error_step * value * variance, 1.0 / shrunk

    def predict_proba_one(self, x: Mapping[str, float]) -> dict[bool, float]:  # type: ignore[override]
        p = sigmoid(self.dot(x) + self.intercept)
        return {False: 1.0 - p, True: p}

    def sample_logits(
        self,
        rows: Sequence[Sequence[Mapping[str, float]]],
        draws: int,
        rng: np.random.Generator,
        variance_scale: float = 1.0,
        optimism: float | np.ndarray = 0.0,
    ) -> np.ndarray:
        """`draws` joint samples of the logits of `rows` (shape draws × len(rows)). Each draw is
        one weight vector from the posterior (its variance times `variance_scale`), so rows that
        share a feature share its draw; every draw of a row is then raised by `optimism`
        standard deviations of that row's logit (of the posterior as it is, unscaled): one level
        for every draw, or one per draw (`RandomizedUCB` draws them). A row is given in parts
        whose features add up (no feature in two parts of a row); a part object that several
        rows hold is read once.

        >>> model = BayesianLogisticRegression()
        >>> shared = {"bias": 1.0}
        >>> rows = [[shared, {"offer=a": 1.0}], [shared, {"offer=b": 1.0}]]
        >>> model.sample_logits(rows, draws=5, rng=np.random.default_rng(0)).shape
        (5, 2)
        >>> for _ in range(20):
        ...     model.learn_one({"bias": 1.0, "offer=a": 1.0}, False)
        >>> centred = model.sample_logits(rows, 1, np.random.default_rng(0), variance_scale=0.0)
        >>> hopeful = model.sample_logits(rows, 1, np.random.default_rng(0), 0.0, optimism=1.0)
        >>> [round(float(v), 2) for v in hopeful[0] - centred[0]]  # b is less known than a
        [0.51, 0.54]
        """
        parts, rows_of_parts = _distinct_parts(rows)
        part_mean, own_variance, design, shared = self._part_moments(parts)
        shared_variance = np.array([self.variance_of(n) for n in shared])
        if variance_scale > 0:
            shared_std = np.sqrt(variance_scale * shared_variance)
            normals = rng.standard_normal((draws, len(shared) + len(parts) + 1))
            by_part = (
                part_mean
                + (normals[:, : len(shared)] * shared_std) @ design.T
                + normals[:, len(shared) : -1] * np.sqrt(variance_scale * own_variance)
            )
            intercepts = self.intercept + normals[:, -1:] * math.sqrt(
                variance_scale / self._intercept_precision
            )
            logits = by_part @ rows_of_parts + intercepts
        else:  # the posterior's mean in every draw
            logits = np.tile(part_mean @ rows_of_parts + self.intercept, (draws, 1))
        if np.any(optimism):
            part_variance = own_variance + design**2 @ shared_variance
            row_variance = part_variance @ rows_of_parts + 1.0 / self._intercept_precision
            levels = np.asarray(optimism, dtype=float).reshape(-1, 1)  # one, or one per draw
            logits = logits + levels * np.sqrt(row_variance)
        return np.asarray(logits)

    def sample_p_accept(
        self,
        rows: Sequence[Sequence[Mapping[str, float]]],
        draws: int,
        rng: np.random.Generator,
        variance_scale: float = 1.0,
        optimism: float | np.ndarray = 0.0,
    ) -> np.ndarray:
        """`sample_logits` through the sigmoid: draws × rows samples of P(accept)."""
        logits = self.sample_logits(rows, draws, rng, variance_scale, optimism)
        # beyond ±700 exp would overflow, and P is 0 or 1 there anyway
        return np.asarray(1.0 / (1.0 + np.exp(-np.clip(logits, -700.0, 700.0))))

    def _part_moments(
        self, parts: list[Mapping[str, float]]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        """Per part: its mean logit and the variance of the features no other part has; and the
        parts' values of the features several parts have (parts × shared), with their names.

        A feature in one part only adds independent noise to that part, so it is drawn as one
        normal per part with the summed variance; only features several parts have are drawn
        one by one, so that the parts (and the rows) that share them move together."""
        in_parts = collections.Counter(itertools.chain.from_iterable(parts))
        shared = [name for name, count in in_parts.items() if count > 1]
        column = {name: i for i, name in enumerate(shared)}
        mean_of, precision_of, prior_of = self._mean.get, self._precision.get, self.prior_of
        offsets = self.offsets
        design = np.zeros((len(parts), len(shared)))
        part_mean, own_variance = np.zeros(len(parts)), np.zeros(len(parts))
        cells: list[tuple[int, int, float]] = []  # (part, shared feature, value)
        for index, part in enumerate(parts):
            mean = variance = 0.0
            for name, value in part.items():
                mean += mean_of(name, 0.0) * value
                if name in column:
                    cells.append((index, column[name], value))
                elif name not in offsets:
                    variance += value * value / (precision_of(name) or prior_of(name))
            part_mean[index], own_variance[index] = mean, variance
        if cells:
            at_part, at_column, values = zip(*cells, strict=True)
            design[at_part, at_column] = values
        return part_mean, own_variance, design, shared


def _swap_prior(
    mean: utils.VectorDict[str, float] | dict[str, float],
    precision: dict[str, float],
    names: list[str],
    old: float,
    new: float,
) -> None:
    """Each of `names`' posterior with prior precision `new` instead of `old`: what the labels
    taught (the rest of its precision) is kept; with a zero-mean prior, the mean scales by the
    ratio of the precisions. Names `precision` does not hold are left as they are."""
    for name in names:
        if name in precision:
            taught = max(precision[name] - old, 0.0)
            mean[name] = mean.get(name, 0.0) * precision[name] / (taught + new)
            precision[name] = taught + new


@dataclass
class _Posterior:
    mean: dict[str, float]
    precision: dict[str, float]
    intercept: float
    intercept_precision: float


class _Window:
    """The labels since a window began, kept as sparse rows over the features they name."""

    def __init__(self) -> None:
        self.columns: dict[str, int] = {}  # feature name → column, in the order first seen
        self.labels: list[bool] = []
        self.offsets: list[float] = []  # each label's offsets, summed
        self._columns: list[np.ndarray] = []
        self._values: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self.labels)

    def add(self, x: list[tuple[str, float]], y: bool, offset: float = 0.0) -> None:
        columns = self.columns
        self._columns.append(
            np.fromiter((columns.setdefault(name, len(columns)) for name, _ in x), np.int32, len(x))
        )
        self._values.append(np.fromiter((value for _, value in x), float, len(x)))
        self.labels.append(y)
        self.offsets.append(offset)

    def matrix(self) -> sparse.csr_matrix:
        """labels × features, as the model saw them."""
        from scipy import sparse

        row_starts = np.concatenate([[0], np.cumsum([len(row) for row in self._columns])])
        return sparse.csr_matrix(
            (np.concatenate(self._values), np.concatenate(self._columns), row_starts),
            shape=(len(self.labels), len(self.columns)),
        )


def _distinct_parts(
    rows: Sequence[Sequence[Mapping[str, float]]],
) -> tuple[list[Mapping[str, float]], np.ndarray]:
    """The distinct part objects of `rows`, and which parts make each row (parts × rows, 0/1)."""
    parts: list[Mapping[str, float]] = []
    index_of: dict[int, int] = {}
    membership: list[tuple[int, int]] = []  # (part, row)
    for position, row in enumerate(rows):
        for part in row:
            if id(part) not in index_of:
                index_of[id(part)] = len(parts)
                parts.append(part)
            membership.append((index_of[id(part)], position))
    rows_of_parts = np.zeros((len(parts), len(rows)))
    rows_of_parts[tuple(zip(*membership, strict=True))] = 1.0
    return parts, rows_of_parts
