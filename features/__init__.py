"""Feature sets: nbo's default, and the way to write and choose your own (`NBO_FEATURE_SET`)."""

from typing import Any

from features.every_field import EVERY_FIELD
from features.feature_set import Exposure, FeatureSet, Moment, feature_set
from features.offer_features import DEFAULT_FEATURES
from features.references import import_reference, is_reference

# name → a built-in feature set; a data scientist's own is named by import reference
FEATURE_SETS: dict[str, FeatureSet] = {"default": DEFAULT_FEATURES, "every-field": EVERY_FIELD}
# What the stream and a replay read unless told otherwise: every field of the customer record,
# so that nbo learns which fields matter in a bank it was not written for (the model learns how
# much each field's crosses may weigh, see `models.bayesian_logistic`). `default`, the smaller
# set, stays the default of a bare `OnlineRanker` and of models registered before.
DEFAULT_FEATURE_SET = "every-field"

__all__ = [
    "DEFAULT_FEATURES",
    "Exposure",
    "FeatureSet",
    "Moment",
    "feature_set",
    "make_feature_set",
]


def make_feature_set(name: str) -> FeatureSet:
    """The feature set a setting names: `default`, or an import reference
    `package.module:attribute` to a `FeatureSet` (as `@feature_set` makes).

    >>> make_feature_set("default").label
    'default/6'
    """
    if name in FEATURE_SETS:
        return FEATURE_SETS[name]
    if is_reference(name):
        found: Any = import_reference(name)
        if isinstance(found, FeatureSet):
            return found
        raise ValueError(
            f"{name} is not a FeatureSet: decorate the function with "
            "@features.feature_set(name, version)"
        )
    raise ValueError(
        f"unknown feature set {name!r}; choose one of {', '.join(FEATURE_SETS)} "
        "or name your own as package.module:attribute"
    )
