"""Feature sets: what a model sees of a customer, an offer, the event and the offer's exposure.

A feature set is code a data scientist owns: a function from the raw records to a
`dict[str, float]`, named and versioned. The model carries it (`OnlineRanker(features=...)`),
so the stream, `nbo replay`, the MLflow pyfunc and a notebook all build a model's features
with the same code, and every decision records the feature set's `label`.

The raw records are plain mappings with the fields of the topics' records (see the README's
field tables): a customer has `segment`, `age`, `products_held`, ... and `attributes`, a map of
scalars the CRM sends as it likes; an offer has `offer_id`, `category`, `value`, ... and
`attributes`; the `Moment` is the event that asks for a decision, with its own `attributes`.

>>> from datetime import datetime, UTC
>>> @feature_set("tier", version=1)
... def tier(customer, offer, moment, exposure):
...     tier = customer.get("attributes", {}).get("tier", "none")
...     return {"bias": 1.0, f"tier={tier}×offer={offer['offer_id']}": 1.0}
>>> tier.label
'tier/1'
>>> moment = Moment("salary_paid", "web", datetime(2026, 3, 2, 9, tzinfo=UTC))
>>> tier.features({"attributes": {"tier": "gold"}}, {"offer_id": "o1"}, moment, Exposure())
{'bias': 1.0, 'tier=gold×offer=o1': 1.0}
"""

from __future__ import annotations

import abc
import importlib
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

Scalar = str | float | int | bool
Features = dict[str, float]


@dataclass(frozen=True)
class Moment:
    """The event a decision answers: what happened, on which channel, when."""

    event_type: str
    channel: str
    timestamp: datetime
    attributes: Mapping[str, Scalar] = field(default_factory=dict)


class Exposure(NamedTuple):
    """Where one offer stands with the customer when the decision is made."""

    days_since_trigger: float | None = None  # None: no trigger of the offer seen
    phase: str = "primary"  # primary / secondary / irrelevant interest
    impressions: int = 0  # shown to this customer within the offer's contact window
    unanswered: int = 0  # of those, not answered


class DecisionParts(abc.ABC):
    """The features of the candidates of one decision, each split in (shared, own).

    The shared part is one read-only object that many candidates of the decision have in
    common (a linear model scores it once per decision); the own part is a new dict per
    candidate, and no feature is in both.
    """

    @abc.abstractmethod
    def parts(self, offer: Mapping[str, Any], exposure: Exposure) -> tuple[Features, Features]:
        """(shared, own) features of one candidate offer."""


class _Unshared(DecisionParts):
    """What a feature set that only writes `features` gives: every feature is a candidate's own."""

    def __init__(
        self, feature_set: FeatureSet, customer: Mapping[str, Any], moment: Moment
    ) -> None:
        self._feature_set = feature_set
        self._customer = customer
        self._moment = moment

    def parts(self, offer: Mapping[str, Any], exposure: Exposure) -> tuple[Features, Features]:
        return _NOTHING_SHARED, self._feature_set.features(
            self._customer, offer, self._moment, exposure
        )


_NOTHING_SHARED: Features = {}  # read-only, as every shared part


class FeatureSet(abc.ABC):
    """A named, versioned way to turn the raw records into a model's features.

    Subclasses write `features`; one that can share work between the candidates of a decision
    also overrides `for_decision` (as the default feature set does).
    """

    def __init__(self, name: str, version: int) -> None:
        self.name = name
        self.version = version

    @property
    def label(self) -> str:
        """`name/version`: what decisions, feedback and the MLflow run record."""
        return f"{self.name}/{self.version}"

    @abc.abstractmethod
    def features(
        self,
        customer: Mapping[str, Any],
        offer: Mapping[str, Any],
        moment: Moment,
        exposure: Exposure,
    ) -> Features:
        """Every feature of one candidate offer, as a new dict."""

    def for_decision(self, customer: Mapping[str, Any], moment: Moment) -> DecisionParts:
        """The features of one decision's candidates, in (shared, own) parts."""
        return _Unshared(self, customer, moment)

    def __repr__(self) -> str:
        return f"<feature set {self.label}>"

    # One label, one feature set: a new version is bumped whenever what it returns changes.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeatureSet) and other.label == self.label

    def __hash__(self) -> int:
        return hash(self.label)


class PartsFeatureSet(FeatureSet):
    """A feature set written as each decision's (shared, own) parts (`for_decision`); a
    candidate's `features` are its two parts together."""

    def features(
        self,
        customer: Mapping[str, Any],
        offer: Mapping[str, Any],
        moment: Moment,
        exposure: Exposure,
    ) -> Features:
        shared, own = self.for_decision(customer, moment).parts(offer, exposure)
        return {**shared, **own}

    @abc.abstractmethod
    def for_decision(self, customer: Mapping[str, Any], moment: Moment) -> DecisionParts:
        """The features of one decision's candidates, in (shared, own) parts."""


FeatureFunction = Callable[[Mapping[str, Any], Mapping[str, Any], Moment, Exposure], Features]


class FunctionFeatureSet(FeatureSet):
    """A feature set from a plain function; see `feature_set`."""

    def __init__(self, name: str, version: int, function: FeatureFunction) -> None:
        super().__init__(name, version)
        self.function = function

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled by reference when `@feature_set` decorated a module's function (that name
        is now this object, so pickle could not find the function by it); by value, function
        included, otherwise (cloudpickle carries a notebook's function along)."""
        module, name = self.function.__module__, self.function.__qualname__
        if module != "__main__" and getattr(sys.modules.get(module), name, None) is self:
            return (_decorated, (module, name))
        return (FunctionFeatureSet, (self.name, self.version, self.function))

    def features(
        self,
        customer: Mapping[str, Any],
        offer: Mapping[str, Any],
        moment: Moment,
        exposure: Exposure,
    ) -> Features:
        features = self.function(customer, offer, moment, exposure)
        if not all(isinstance(value, int | float) for value in features.values()):
            name, value = next(
                (k, v) for k, v in features.items() if not isinstance(v, int | float)
            )
            raise ValueError(
                f"feature set {self.label}: feature {name!r} of offer {offer.get('offer_id')!r} "
                f"is {value!r}, not a number"
            )
        return features


def feature_set(name: str, version: int) -> Callable[[FeatureFunction], FunctionFeatureSet]:
    """Decorator: `@feature_set("mine", version=2)` over `f(customer, offer, moment, exposure)`
    makes it a `FeatureSet` a model can carry. Bump the version whenever what it returns
    changes: a model learned with one version must not be fed another's features."""

    def wrap(function: FeatureFunction) -> FunctionFeatureSet:
        return FunctionFeatureSet(name, version, function)

    return wrap


def _decorated(module: str, name: str) -> FunctionFeatureSet:
    found: FunctionFeatureSet = getattr(importlib.import_module(module), name)
    return found
