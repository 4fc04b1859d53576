"""What a replay evaluates: the target model and its exploration policy, by name or object.

The model is a name or import reference (as `NBO_RANKER_MODEL`), a registered version
(`models:/nbo-ranker/3`, `models:/nbo-ranker@champion`: it goes on learning from the log), or,
from Python, any `OnlineRanker` or River classifier or pipeline (see `resolve_model`).
"""

from __future__ import annotations

import copy

from river import base

from features import DEFAULT_FEATURE_SET, FeatureSet, make_feature_set
from features.references import import_reference, is_reference
from models.policies import Policy, make_policy
from models.ranker import OnlineRanker, as_ranker, make_ranker
from pipeline.errors import ConfigError

TargetModel = str | OnlineRanker | base.Classifier


def resolve_model(
    model: TargetModel,
    features: str | FeatureSet | None = None,
    *,
    learning_rate: float = 0.15,
    seed: int = 0,
) -> OnlineRanker:
    """The ranker a replay evaluates, its own copy (a replay learns as it goes):

    - an `OnlineRanker` object as it is, learned state and feature set included;
    - a River classifier or pipeline object, fresh, with `features` (default: the stream's
      default `NBO_FEATURE_SET`);
    - `models:/nbo-ranker/N` or `models:/nbo-ranker@alias`: a registered version as it was
      registered, with its feature set (MLflow's tracking URI must point at the registry);
    - a model name or `package.module:attribute`, as the setting `NBO_RANKER_MODEL`.

    Raises ConfigError when `model` or `features` names nothing usable.
    """
    learned = is_learned(model)
    if learned and features is not None:
        raise ConfigError(f"{model}: a learned ranker reads its own feature set; give no features")
    try:
        if isinstance(model, OnlineRanker):
            return copy.deepcopy(model)
        if learned:
            from pipeline.review.registry import (
                load_ranker_at,  # MLflow only when a registry is named
            )

            return load_ranker_at(str(model))
        if features is None:
            features = DEFAULT_FEATURE_SET  # the stream's
        feature_set = make_feature_set(features) if isinstance(features, str) else features
        if isinstance(model, str):
            return make_ranker(
                model,
                features=feature_set,
                learning_rate=learning_rate,
                seed=seed,
            )
        return as_ranker(model, feature_set)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"cannot replay model {model}: {error}") from error


def is_learned(model: TargetModel) -> bool:
    """Whether `model` is a learned ranker, which reads its own feature set."""
    return isinstance(model, OnlineRanker) or (
        isinstance(model, str) and model.startswith("models:/")
    )


def resolve_policy(policy: str | Policy, *, epsilon: float = 0.1, seed: int = 0) -> Policy:
    """An exploration policy by name, by `package.module:attribute`, or as an object."""
    if not isinstance(policy, str):
        return policy
    try:
        if is_reference(policy):
            found: Policy = import_reference(policy)
            return found
        return make_policy(policy, seed, epsilon)
    except ValueError as error:
        raise ConfigError(f"cannot replay policy {policy}: {error}") from error
