"""The stream's default feature set (`NBO_FEATURE_SET=every-field`): the `default` features,
and every other field of the customer record, its attributes included, without code.

Each field becomes one or more indicators: a text `region=north`, a yes/no `vip=true`, each item
of a list `products_held=card`, and a number a band on a log scale (`income~22`: bands about 1.65×
apart, so 30,000 and 45,000 fall in neighbouring bands). Each indicator is crossed with the offer's
category (shared by the candidates of a category) and with the offer itself, so the model learns
which offers suit whom by any field the CRM sends, a new one included; the default model learns
how much each field's crosses may weigh (`models.bayesian_logistic`), so the fields that say
nothing in a bank stay quiet there.

>>> from datetime import datetime, UTC
>>> from features import Exposure, Moment
>>> customer = {"segment": "mass", "age": 34, "region": "north", "income": 45000.0,
...             "products_held": ["card"], "attributes": {"household": "family"}}
>>> indicators(customer)
('region=north', 'income~21', 'products_held=card', 'household=family')
>>> moment = Moment("travel_booking", "web", datetime(2026, 3, 2, 9, tzinfo=UTC))
>>> x = EVERY_FIELD.features(customer, {"offer_id": "card-2", "category": "card"}, moment,
...                          Exposure(1.0, "primary", 0, 0))
>>> x["region=north×offer=card-2"], x["household=family×category=card"]
(1.0, 1.0)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

from features.feature_set import DecisionParts, Exposure, Features, Moment, PartsFeatureSet
from features.offer_features import DefaultFeatures
from features.values import holdings

# Read by the default features already, or not about the customer
SKIPPED = frozenset({"customer_id", "segment", "age", "updated_at", "consents", "attributes"})


def indicators(customer: Mapping[str, Any]) -> tuple[str, ...]:
    """One indicator per text, yes/no or list item, and a log-scale band per number, of every
    field of `customer` but the skipped ones, and of its `attributes`. A category accepted
    through nbo is `acquired=…`, not one of the `products_held` (`features.values.holdings`).

    >>> indicators({"products_held": ["card", "loan"], "acquired": ["loan"]})
    ('products_held=card', 'acquired=loan')
    """
    held, _ = holdings(customer)
    fields = [
        (name, held if name == "products_held" else value)
        for name, value in customer.items()
        if name not in SKIPPED
    ]
    fields += list((customer.get("attributes") or {}).items())
    found: list[str] = []
    for name, value in fields:
        if isinstance(value, bool):
            found.append(f"{name}={str(value).lower()}")
        elif isinstance(value, int | float):
            found.append(f"{name}~{round(2 * math.log1p(max(float(value), 0.0)))}")
        elif isinstance(value, list | tuple | set | frozenset):
            found.extend(f"{name}={item}" for item in value)
        elif value is not None and value != "":
            found.append(f"{name}={value}")
    return tuple(found)


class EveryFieldFeatures(PartsFeatureSet):
    """The default features and every customer field's indicators, crossed with the category
    and with the offer."""

    def __init__(self) -> None:
        # version 1 read accepted categories as held, version 2 had `default/4`'s exposure counts
        super().__init__("every-field", 3)
        self._default = DefaultFeatures()

    def for_decision(self, customer: Mapping[str, Any], moment: Moment) -> DecisionParts:
        default = self._default.for_decision(customer, moment)
        return _EveryFieldParts(default, indicators(customer))


class _EveryFieldParts(DecisionParts):
    def __init__(self, default: DecisionParts, fields: tuple[str, ...]) -> None:
        self._default = default
        self._fields = fields
        self._shared: dict[tuple[str, str], Features] = {}  # by category and phase

    def parts(self, offer: Mapping[str, Any], exposure: Exposure) -> tuple[Features, Features]:
        shared, own = self._default.parts(offer, exposure)
        key = (offer["category"], exposure.phase)  # what the default's shared part depends on
        merged = self._shared.get(key)
        if merged is None:
            merged = {**shared, **_crossed(self._fields, f"category={offer['category']}")}
            self._shared[key] = merged
        own.update(_crossed(self._fields, f"offer={offer['offer_id']}"))
        return merged, own


@functools.lru_cache(maxsize=65536)
def _crossed(fields: tuple[str, ...], with_: str) -> dict[str, float]:
    """Read-only: callers copy it into their own dicts."""
    return {f"{field}×{with_}": 1.0 for field in fields}


EVERY_FIELD = EveryFieldFeatures()
