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
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np

from features.index import FeatureIndex, index_for

Scalar = str | float | int | bool
Features = dict[str, float]


# Read-only feature dicts that candidates (of one decision, or of many) have in common
Blocks = tuple[Features, ...]


def merged(blocks: Blocks, own: Features) -> Features:
    """A candidate's features as one new dict: its blocks', then its own.

    >>> merged(({"bias": 1.0}, {"segment=mass": 1.0}), {"impressions": 2.0})
    {'bias': 1.0, 'segment=mass': 1.0, 'impressions': 2.0}
    """
    out: Features = {}
    for block in blocks:
        out.update(block)
    out.update(own)
    return out


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


@dataclass(frozen=True)
class Exposures:
    """The `Exposure` of each candidate of a decision, as columns."""

    days_since_trigger: np.ndarray  # NaN: no trigger of the offer seen
    phase: Sequence[str]
    impressions: np.ndarray
    unanswered: np.ndarray

    def __getitem__(self, row: int) -> Exposure:
        days = float(self.days_since_trigger[row])
        return Exposure(
            None if math.isnan(days) else days,
            self.phase[row],
            int(self.impressions[row]),
            int(self.unanswered[row]),
        )

    def take(self, rows: np.ndarray) -> Exposures:
        """The exposures at `rows`, in that order."""
        return Exposures(
            self.days_since_trigger[rows],
            [self.phase[row] for row in rows.tolist()],
            self.impressions[rows],
            self.unanswered[rows],
        )

    def in_phase(self, phase: Sequence[str]) -> Exposures:
        """The same exposures in the phases `phase`."""
        return Exposures(self.days_since_trigger, phase, self.impressions, self.unanswered)


@dataclass(frozen=True)
class FeatureColumns:
    """The features of a decision's candidates as numbers: candidate i has the feature of
    column `indices[i, j]` of a `features.index.FeatureIndex` with the value `values[i, j]`
    (a feature a candidate does not have is a slot whose value is 0)."""

    indices: np.ndarray  # candidates × slots
    values: np.ndarray  # candidates × slots


class DecisionParts(abc.ABC):
    """The features of the candidates of one decision, each split in (blocks, own).

    The blocks are read-only dicts that many candidates have in common: of this decision (the
    customer's features crossed with a category) or of every decision (an offer's identity
    crossed with a segment, built once per process by a cached function), so that they are
    built once. The own part is a new dict per candidate, and no feature is in two parts of one
    candidate. A feature set may also give every candidate's features at once as numbers
    (`columns`), which the built-in linear models score in one pass.
    """

    @abc.abstractmethod
    def parts(self, offer: Mapping[str, Any], exposure: Exposure) -> tuple[Blocks, Features]:
        """(blocks, own) features of one candidate offer."""

    def columns(
        self, offers: Sequence[Mapping[str, Any]], exposures: Exposures, index: FeatureIndex
    ) -> FeatureColumns | None:
        """The features of all candidates at once, as columns of `index` (for the built-in
        linear models' fast path); None: this feature set gives its features as dicts only, and
        they are scored one by one. Where given, they are exactly `parts`' features."""
        return None


class _Unshared(DecisionParts):
    """What a feature set that only writes `features` gives: every feature is a candidate's own."""

    def __init__(
        self, feature_set: FeatureSet, customer: Mapping[str, Any], moment: Moment
    ) -> None:
        self._feature_set = feature_set
        self._customer = customer
        self._moment = moment

    def parts(self, offer: Mapping[str, Any], exposure: Exposure) -> tuple[Blocks, Features]:
        return (), self._feature_set.features(self._customer, offer, self._moment, exposure)


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

    @property
    def offsets(self) -> tuple[str, ...]:
        """Features a model adds to its logit as they are (weight 1, never learned): a prior
        that the other features correct (the default features' documented time-value curve)."""
        return ()

    @property
    def index(self) -> FeatureIndex:
        """The columns of this feature set's features in this process (see
        `DecisionParts.columns`)."""
        return index_for(self.label)

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
        """The features of one decision's candidates, in (blocks, own) parts."""
        return _Unshared(self, customer, moment)

    def __repr__(self) -> str:
        return f"<feature set {self.label}>"

    # One label, one feature set: a new version is bumped whenever what it returns changes.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeatureSet) and other.label == self.label

    def __hash__(self) -> int:
        return hash(self.label)


class PartsFeatureSet(FeatureSet):
    """A feature set written as each decision's (blocks, own) parts (`for_decision`); a
    candidate's `features` are its parts together."""

    def features(
        self,
        customer: Mapping[str, Any],
        offer: Mapping[str, Any],
        moment: Moment,
        exposure: Exposure,
    ) -> Features:
        return merged(*self.for_decision(customer, moment).parts(offer, exposure))

    @abc.abstractmethod
    def for_decision(self, customer: Mapping[str, Any], moment: Moment) -> DecisionParts:
        """The features of one decision's candidates, in (blocks, own) parts."""


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
