"""The online ranker: P(accept) from any River binary classifier, priority from time value.

`OnlineRanker` is a River classifier (`learn_one`, `predict_proba_one`, `predict_one`,
`clone`) that wraps the classifier or pipeline a data scientist chooses and adds `rank`:
priority = P(accept) × value now × business lever. `make_ranker` builds the named models a
setting chooses (`NBO_RANKER_MODEL`).

>>> from river import linear_model, optim, preprocessing
>>> ranker = OnlineRanker(linear_model.LogisticRegression(optimizer=optim.SGD(0.15)))
>>> for _ in range(50):
...     ranker.learn_one({"bias": 1.0, "category=card": 1.0}, True)
...     ranker.learn_one({"bias": 1.0, "category=loan": 1.0}, False)
>>> ranker.predict_one({"bias": 1.0, "category=card": 1.0})
True
>>> round(ranker.predict_proba_one({"bias": 1.0, "category=card": 1.0})[True], 3)
0.87
>>> ranker.version
'LogisticRegression-100'
>>> [c.key for c in ranker.rank([
...     Candidate("loan", {"bias": 1.0, "category=loan": 1.0}, value_now=100.0),
...     Candidate("card", {"bias": 1.0, "category=card": 1.0}, value_now=100.0),
... ])]
['card', 'loan']

Any River pipeline whose last step is a binary classifier plugs in the same way:

>>> scaled = OnlineRanker(preprocessing.StandardScaler() | linear_model.LogisticRegression())
>>> scaled.version
'StandardScaler|LogisticRegression-0'
>>> scaled.clone().n_learned
0
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

import numpy as np
from river import base

from features import DEFAULT_FEATURES, FeatureSet
from features.feature_set import FeatureColumns
from features.index import FeatureIndex
from features.references import import_reference, is_reference
from models.bayesian_logistic import BayesianLogisticRegression
from models.candidates import Candidate, Offers, Scores
from models.linear_scores import LinearScores, p_accept_at_mean, p_of_logits
from models.names import DEFAULT_MODEL, MODELS
from models.policies import PosteriorSampler, Ranking

# Steps that transform each feature on its own (x_i → f_i(x_i)): a pipeline of them before
# nbo's logistic regression keeps its posterior (see `OnlineRanker.posterior`).
_ELEMENTWISE = ("StandardScaler", "MaxAbsScaler", "MinMaxScaler")


def is_river(obj: object, module: str, *names: str) -> bool:
    """Whether `obj` is exactly one of River's classes `names` of `module` (or a submodule),
    told by its class's own module and name. River's linear models, pipelines and scalers pull
    in scipy, pandas and sklearn, which a process with the default model never needs (a ranker
    restarts seconds sooner without them), so nothing here imports them; nor does it read a
    module that another thread (a model being unpickled) may be importing at that moment.

    >>> from river import linear_model
    >>> is_river(linear_model.LogisticRegression(), "river.linear_model", "LogisticRegression")
    True
    >>> class LogisticRegression: ...
    >>> is_river(LogisticRegression(), "river.linear_model", "LogisticRegression")
    False
    """
    kind = type(obj)
    home = kind.__module__
    return kind.__name__ in names and (home == module or home.startswith(f"{module}."))


def is_logistic(estimator: object) -> bool:
    """A logistic regression of nbo's or River's: the models with a linear fast path."""
    return isinstance(estimator, BayesianLogisticRegression) or is_river(
        estimator, "river.linear_model", "LogisticRegression"
    )


def default_classifier(learning_rate: float = 0.15) -> base.Classifier:
    """nbo's logistic regression: plain SGD, a little L2."""
    from river import linear_model, optim

    return linear_model.LogisticRegression(optimizer=optim.SGD(learning_rate), l2=1e-5)


def make_ranker(
    model: str = DEFAULT_MODEL,
    *,
    features: FeatureSet = DEFAULT_FEATURES,
    learning_rate: float = 0.15,
    seed: int = 0,
) -> OnlineRanker:
    """A fresh ranker for the setting `NBO_RANKER_MODEL`: a name of `models.names.MODELS`, or an
    import reference `package.module:attribute` to an `OnlineRanker`, a River classifier or
    pipeline, or a function that returns one (see `as_ranker`). `features` is the feature set of
    a named model or of a bare classifier; an `OnlineRanker` keeps its own.

    >>> make_ranker("naive_bayes").version
    'naive_bayes-0'
    """
    if model in MODELS:
        factory: Callable[[FeatureSet, float, int], OnlineRanker] = import_reference(MODELS[model])
        return factory(features, learning_rate, seed)
    if is_reference(model):
        return as_ranker(import_reference(model), features, name=model.partition(":")[2])
    raise ValueError(
        f"unknown model {model!r}; choose one of {', '.join(MODELS)} "
        "or name your own as package.module:attribute"
    )


# The built-in models (`models.names.MODELS`): (features, learning_rate, seed) → a fresh ranker.


def bayesian_logistic(features: FeatureSet, learning_rate: float, seed: int) -> OnlineRanker:
    """Logistic regression with a Gaussian posterior per weight (the default)."""
    classifier = BayesianLogisticRegression(offsets=features.offsets)
    return OnlineRanker(classifier, features, name="bayesian_logistic")


def bayesian_logistic_refit(features: FeatureSet, learning_rate: float, seed: int) -> OnlineRanker:
    """The default, and every 1,000 labels fit to its window of labels at once."""
    classifier = BayesianLogisticRegression(
        refit_every=1000, refit_window=20_000, offsets=features.offsets
    )
    return OnlineRanker(classifier, features, name="bayesian_logistic_refit")


def logistic(features: FeatureSet, learning_rate: float, seed: int) -> OnlineRanker:
    """River's logistic regression, plain SGD at `learning_rate`."""
    return OnlineRanker(default_classifier(learning_rate), features, name="logistic")


def adaptive_forest(features: FeatureSet, learning_rate: float, seed: int) -> OnlineRanker:
    """An adaptive random forest of 10 Hoeffding trees."""
    # A single Hoeffding tree is not offered: with sparse one-hot crosses it never split in
    # our tests (River 0.26), so it would rank by its prior forever.
    from river import forest  # here, not at the top: see `is_river`

    classifier = forest.ARFClassifier(n_models=10, seed=seed)
    return OnlineRanker(classifier, features, dense=True, name="adaptive_forest")


def naive_bayes(features: FeatureSet, learning_rate: float, seed: int) -> OnlineRanker:
    """Bernoulli naive Bayes."""
    from river import naive_bayes as bayes

    return OnlineRanker(bayes.BernoulliNB(), features, name="naive_bayes")


def as_ranker(
    model: Any, features: FeatureSet = DEFAULT_FEATURES, name: str | None = None
) -> OnlineRanker:
    """A fresh, unlearned `OnlineRanker` from what a data scientist hands over: an
    `OnlineRanker` (with its own feature set), a River binary classifier or pipeline (with
    `features`), or a function that returns one."""
    if callable(model) and not isinstance(model, base.Estimator):
        model = model()
    if isinstance(model, OnlineRanker):
        return model.clone()
    if isinstance(model, base.Classifier):
        return OnlineRanker(model.clone(), features, name=name)
    raise TypeError(f"{model!r} is neither an OnlineRanker nor a River classifier")


def _listed(candidates: Sequence[Candidate] | Offers) -> list[Candidate]:
    if isinstance(candidates, Offers):
        return [candidates.candidate(row) for row in range(len(candidates))]
    return list(candidates)


def columns_of(rows: Sequence[Mapping[str, float]], index: FeatureIndex) -> FeatureColumns:
    """Features as dicts, one per candidate, as columns of `index` (a candidate with fewer
    features than another has slots of value 0)."""
    width = max((len(row) for row in rows), default=0)
    indices, values = np.zeros((len(rows), width), np.int64), np.zeros((len(rows), width))
    for at, row in enumerate(rows):
        indices[at, : len(row)] = index.columns(list(row))
        values[at, : len(row)] = list(row.values())
    return FeatureColumns(indices, values)


def steps_of(classifier: base.Estimator) -> list[base.Estimator]:
    """The steps of a pipeline, or the classifier alone."""
    if is_river(classifier, "river.compose", "Pipeline"):
        return list(cast(Any, classifier).steps.values())
    return [classifier]


def transformed(transformers: list[base.Estimator], x: dict[str, float]) -> dict[Any, Any]:
    """`x` through the transformers of a pipeline, in order."""
    out: dict[Any, Any] = x
    for step in transformers:
        out = cast(base.Transformer, step).transform_one(out)
    return out


class OnlineRanker(base.Classifier):
    """Ranks candidates by priority = P(accept) × value now × business lever.

    Parameters
    ----------
    classifier
        Any River binary classifier or pipeline ending in one; learns True (accepted) or False.
        Default: logistic regression with SGD (step 0.15) and L2 1e-5.
    features
        The feature set the model learns from and is scored with (see `features`); it travels
        with the model, to the registry and to a replay. Default: nbo's default feature set.
    dense
        Give the classifier every feature seen so far, 0.0 where absent. Trees need it: they
        cannot split on a feature that is absent from a dict, and nbo's features are sparse
        one-hot crosses.
    name
        What `version` starts with; default the class names of the classifier's steps.
    fast_path
        Score nbo's `BayesianLogisticRegression` and River's `LogisticRegression` (alone, not in
        a pipeline) all candidates at once (`models.linear_scores`). Off, they are scored one by
        one through `predict_proba_one`, as any other classifier: the same results, slower.
    """

    def __init__(
        self,
        classifier: base.Classifier | None = None,
        features: FeatureSet = DEFAULT_FEATURES,
        dense: bool = False,
        name: str | None = None,
        fast_path: bool = True,
    ) -> None:
        if classifier is not None and not isinstance(classifier, base.Classifier):
            raise TypeError(f"{classifier!r} is not a River classifier")
        if not isinstance(features, FeatureSet):
            raise TypeError(f"{features!r} is not a FeatureSet (see features.feature_set)")
        self.classifier = classifier if classifier is not None else default_classifier()
        self.features = features
        self.dense = dense
        self.name = name
        self.fast_path = fast_path
        self._n_learned = 0
        self._feature_names: dict[str, float] = {}  # all zeros: every feature seen, for `dense`
        self._weights_seen: tuple[int, dict[str, float]] = (-1, {})  # (n_learned, weights)
        self._scores: tuple[tuple[int, int], LinearScores] | None = None  # the fast path's

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_scores"] = None  # worked out again where the model is used
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "_classifier" in state:  # pickled when a model was picked by name (feature set v1)
            state = {
                "classifier": state["_classifier"],
                # default/2 and /3 add the offer's identity and its crosses, which such a model
                # never learned a weight for: it scores exactly as with default/1 until it does
                "features": DEFAULT_FEATURES,
                "dense": state["model"] == "adaptive_forest",
                "name": state["model"],
                "_n_learned": state["_n_learned"],
                "_feature_names": state.get("_feature_names", {}),
                "_weights_seen": (-1, {}),
            }
        state.setdefault("fast_path", True)  # pickled before the fast path
        state.setdefault("_scores", None)
        self.__dict__.update(state)

    @property
    def version(self) -> str:
        """Changes with every label learned: a decision records the version that made it."""
        kind = self.name or "|".join(type(step).__name__ for step in steps_of(self.classifier))
        return f"{kind}-{self._n_learned}"

    @property
    def n_learned(self) -> int:
        return self._n_learned

    def _dense(self, x: dict[str, float]) -> dict[Any, Any]:
        return {**self._feature_names, **x} if self.dense else x

    def learn_one(self, x: dict[str, float], y: bool) -> None:  # type: ignore[override]
        if self.dense:
            for name in x.keys() - self._feature_names.keys():
                self._feature_names[name] = 0.0
        self.classifier.learn_one(self._dense(x), bool(y))
        self._n_learned += 1

    def predict_proba_one(self, x: dict[str, float]) -> dict[bool, float]:  # type: ignore[override]
        """{False: 1 - P(accept), True: P(accept)} for a shown offer with features `x`."""
        p = self.p_accept(x)
        return {False: 1.0 - p, True: p}

    def p_accept(self, x: dict[str, float]) -> float:
        """P(accept) for a shown offer with features `x` (0.5 before anything is learned by a
        classifier that has no prior)."""
        proba = self.classifier.predict_proba_one(self._dense(x))
        if not proba:
            return 0.5
        return float(proba.get(True, 0.0))

    def score(self, candidates: Sequence[Candidate] | Offers) -> Scores:
        """Every candidate scored, in the order given: all at once, as NumPy arrays over
        feature columns (the fast path of `bayesian_logistic` and `logistic`), or one by one
        through the classifier's `predict_proba_one` (any other classifier or pipeline)."""
        fast = self._linear_scores()
        if fast is None:
            listed = _listed(candidates)
            p_accept = [self.p_accept(c.all_features()) for c in listed]
            return Scores.of(listed, np.array(p_accept, dtype=float))
        columns = candidates.columns(self.features) if isinstance(candidates, Offers) else None
        if columns is None:  # features as dicts: read into columns here
            self.features.index.fresh_if_full()
            listed = _listed(candidates)
            columns = columns_of([c.all_features() for c in listed], self.features.index)
            candidates = listed
        logits, variances = fast.logits(columns)
        return Scores.of(
            candidates, p_of_logits(logits), logits, variances if fast.has_variance else None
        )

    def rank(self, candidates: Iterable[Candidate] | Offers) -> Scores:
        """Score every candidate and return them best first (ties: higher P × value). The
        candidates are not changed."""
        if not isinstance(candidates, Offers):
            candidates = list(candidates)
        return self.score(candidates).best_first()

    def ranking(self, ranked: Scores) -> Ranking:
        """What an exploration policy sees of `ranked`, with the model's posterior when it has
        one."""
        return Ranking(ranked.p_accept, ranked.worth, self.posterior(ranked), self._n_learned)

    def _linear_scores(self) -> LinearScores | None:
        """The fast path's view of the model as it is now (None: the general path)."""
        if not self.fast_path or self.dense:
            return None
        last = self.classifier
        if not is_logistic(last):
            return None
        at = (id(last), self._n_learned)
        if self._scores is None or self._scores[0] != at:
            self._scores = (at, LinearScores.of(last, self.features.index))
        return self._scores[1]

    def _linear_parts(
        self,
    ) -> tuple[list[base.Estimator], Any] | None:
        """(the per-feature transformers, the logistic regression: River's or ours) of a linear
        model."""
        *before, last = steps_of(self.classifier)
        if (
            self.dense
            or not is_logistic(last)
            or not all(is_river(step, "river.preprocessing", *_ELEMENTWISE) for step in before)
        ):
            return None
        return before, last

    def posterior(self, ranked: Scores) -> PosteriorSampler | None:
        """Draws of the candidates' P(accept) from the model's posterior over its weights, for
        the exploration policies; None for a model without one (only
        `BayesianLogisticRegression`, alone or after per-feature scalers, has one). Draws at the
        posterior's mean (as Randomized UCB's) read the logits' moments that the fast path
        scored; draws that move the weights (Thompson sampling's) draw them jointly."""
        linear = self._linear_parts()
        if linear is None or not isinstance(linear[1], BayesianLogisticRegression):
            return None
        before, last = linear[0], linear[1]
        mean, variance = ranked.logit, ranked.logit_variance

        def sample(
            rng: np.random.Generator,
            draws: int,
            variance_scale: float,
            optimism: float | np.ndarray = 0.0,
        ) -> np.ndarray:
            if variance_scale == 0 and mean is not None and variance is not None:
                return p_accept_at_mean(mean, variance, draws, optimism)
            # each part is transformed once, so that the candidates that share it share its draw
            transformed_parts: dict[int, dict[Any, Any]] = {}

            def part(features: Mapping[str, float]) -> dict[Any, Any]:
                if id(features) not in transformed_parts:
                    transformed_parts[id(features)] = transformed(before, dict(features))
                return transformed_parts[id(features)]

            rows = [[part(p) for p in (*c.blocks, c.features)] for c in ranked.candidates]
            return last.sample_p_accept(rows, draws, rng, variance_scale, optimism)

        return sample

    # -- explanations ----------------------------------------------------------------------

    def weights(self) -> dict[str, float]:
        """The feature weights of the last step ({} when it has none, as a tree or naive Bayes).

        Read through River's public `weights`, once per label learned."""
        seen, weights = self._weights_seen
        if seen != self._n_learned:
            last = steps_of(self.classifier)[-1]
            found = getattr(last, "weights", None)
            weights = (
                {str(k): float(v) for k, v in found.items()} if isinstance(found, dict) else {}
            )
            self._weights_seen = (self._n_learned, weights)
        return weights

    def contributions(self, x: dict[str, float], top: int = 3) -> list[tuple[str, float]]:
        """The features that moved P(accept) most for `x`: weight × the value the last step sees
        (after the pipeline's transformers). [] when the last step has no weights."""
        weights = self.weights()
        if not weights:
            return []
        x = transformed(steps_of(self.classifier)[:-1], x)
        parts = [(str(name), weights.get(str(name), 0.0) * value) for name, value in x.items()]
        parts.sort(key=lambda part: abs(part[1]), reverse=True)
        return [(name, round(value, 4)) for name, value in parts[:top] if value != 0.0]
