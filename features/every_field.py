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

import math
from collections.abc import Mapping, Sequence
from typing import Any

from features.feature_set import (
    Blocks,
    DecisionParts,
    Exposure,
    Exposures,
    FeatureColumns,
    Features,
    Moment,
    PartsFeatureSet,
)
from features.index import FeatureIndex
from features.offer_features import DecisionFeatures, DefaultFeatures
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
        # version 1 read accepted categories as held, version 2 had `default/4`'s exposure
        # counts, version 3 `default/5`'s features (no time curve per offer)
        super().__init__("every-field", 4)
        self._default = DefaultFeatures()

    @property
    def offsets(self) -> tuple[str, ...]:
        return self._default.offsets

    def for_decision(self, customer: Mapping[str, Any], moment: Moment) -> DecisionParts:
        default = self._default.for_decision(customer, moment)
        return _EveryFieldParts(default, tuple(dict.fromkeys(indicators(customer))))


class _EveryFieldParts(DecisionParts):
    def __init__(self, default: DecisionFeatures, fields: tuple[str, ...]) -> None:
        self._default = default
        self._fields = fields
        self._by_category: dict[str, Features] = {}  # shared by this decision's candidates

    def parts(self, offer: Mapping[str, Any], exposure: Exposure) -> tuple[Blocks, Features]:
        blocks, own = self._default.parts(offer, exposure)
        category = offer["category"]
        by_category = self._by_category.get(category)
        if by_category is None:
            by_category = self._by_category[category] = _crossed(
                self._fields, f"category={category}"
            )
        own.update(_crossed(self._fields, f"offer={offer['offer_id']}"))
        return (*blocks, by_category), own

    def columns(
        self, offers: Sequence[Mapping[str, Any]], exposures: Exposures, index: FeatureIndex
    ) -> FeatureColumns:
        return self._default.columns(offers, exposures, index, crossed=self._fields)


def _crossed(fields: tuple[str, ...], with_: str) -> Features:
    return {f"{field}×{with_}": 1.0 for field in fields}


EVERY_FIELD = EveryFieldFeatures()
