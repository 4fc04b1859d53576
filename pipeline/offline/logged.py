"""A log of shown offers from any system, read as nbo's records: the mapping and the rows.

The mapping (YAML) says which column is which, so a log from another system is used as is:

    timestamp: event_time          # required
    offer_id: item                 # required: the offer shown
    reward: clicked                # required: > 0 counts as accepted
    propensity: p_log              # required: P(logging policy showed this offer)
    position: slot                 # optional: only position 1 is evaluated, all are learned
    candidates: eligible           # optional: offers considered, `a|b|c`; default every item
    context: {segment: seg, age: age, channel: channel, event_type: trigger,
              attributes: [user_feature_0]}   # customer attributes a feature set may read
    items: {offer_id: id, category: family, value: value, attributes: [brand]}

A missing entry means the column has nbo's own name. The reward model of doubly robust is the
ranker's P(accept), times the offer's value when `reward_model: accept_times_value`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from features.values import parse_time, split_list
from pipeline.connectors.files import RejectedRow, read_rows
from pipeline.contracts.schemas import describe_errors
from pipeline.errors import LoadError


class ContextColumns(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    segment: str | None = "segment"
    age: str | None = "age"
    products_held: str | None = "products_held"
    channel: str | None = "channel"
    event_type: str | None = "event_type"
    attributes: tuple[str, ...] = ()  # columns read as the customer's attributes


class ItemColumns(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    offer_id: str = "offer_id"
    category: str = "category"
    value: str | None = None
    lever: str | None = None
    attributes: tuple[str, ...] = ()  # columns read as the offer's attributes


class LogMapping(BaseModel):
    """Which column of the log (and of the items file) holds what nbo needs."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    timestamp: str = "timestamp"
    offer_id: str = "offer_id"
    reward: str = "reward"
    propensity: str = "propensity"
    position: str | None = None
    candidates: str | None = None
    context: ContextColumns = ContextColumns()
    items: ItemColumns = ItemColumns()
    reward_model: Literal["accept", "accept_times_value"] = "accept"

    @classmethod
    def from_file(cls, path: Path | None) -> LogMapping:
        if path is None:
            return cls()
        if not path.is_file():
            raise LoadError(f"{path}: no such file")
        try:
            return cls.model_validate(yaml.safe_load(path.read_text()) or {})
        except (yaml.YAMLError, ValidationError) as error:
            detail = describe_errors(error) if isinstance(error, ValidationError) else str(error)
            raise LoadError(f"{path}: not a valid log mapping: {detail}") from error


@dataclass(frozen=True)
class Item:
    offer_id: str
    offer: dict[str, Any]  # what a feature set reads: offer_id, category, value, attributes
    value: float = 1.0
    lever: float = 1.0


@dataclass(frozen=True)
class LoggedShow:
    line: int
    timestamp: datetime
    offer_id: str
    reward: float
    propensity: float
    position: int
    candidates: tuple[str, ...] | None
    customer: dict[str, Any]
    channel: str
    event_type: str


@dataclass(frozen=True)
class Rejected:
    line: int
    reason: str


def read_items(path: Path, columns: ItemColumns) -> dict[str, Item]:
    items = {}
    for number, row in read_rows(path):
        if isinstance(row, RejectedRow):
            raise LoadError(f"{path}:{number}: bad item row: {row.field}: {row.reason}")
        try:
            offer_id = str(row[columns.offer_id])
            value = float(row[columns.value]) if columns.value else 1.0
            offer = {
                "offer_id": offer_id,
                "category": str(row[columns.category]),
                "value": value,
                "attributes": {name: row[name] for name in columns.attributes},
            }
            lever = float(row[columns.lever]) if columns.lever else 1.0
            items[offer_id] = Item(offer_id, offer, value, lever)
        except (KeyError, TypeError, ValueError) as error:
            raise LoadError(f"{path}:{number}: bad item row: {error!r}") from error
    if not items:
        raise LoadError(f"{path}: no items")
    return items


def _timestamp(value: Any) -> datetime:
    return parse_time(value if isinstance(value, int | float) else str(value))


def _list(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    return tuple(split_list(str(value or "")))


def _finite(value: Any) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return number


def check_columns(mapping: LogMapping, columns: set[str], path: Path) -> None:
    """Refuse a mapping that names a column the log lacks: every row would lose what it maps
    (a context column) or be rejected (a required one), and the replay would not say why."""
    named = {
        name: getattr(mapping, name) for name in ("timestamp", "offer_id", "reward", "propensity")
    }
    for name in ("position", "candidates"):
        if getattr(mapping, name) is not None:
            named[name] = getattr(mapping, name)
    for name in mapping.context.model_fields_set - {"attributes"}:
        if getattr(mapping.context, name) is not None:
            named[f"context.{name}"] = getattr(mapping.context, name)
    for column in mapping.context.attributes:
        named[f"context.attributes[{column}]"] = column
    missing = {key: column for key, column in named.items() if column not in columns}
    if missing:
        listed = ", ".join(f"{key} → {column!r}" for key, column in missing.items())
        raise LoadError(f"{path}: the mapping names columns the log does not have: {listed}")


def parse_show(number: int, row: dict[str, Any], mapping: LogMapping) -> LoggedShow:
    """One log row as a `LoggedShow`; raises ValueError naming the column that is wrong."""

    def column(name: str | None, required: bool = True) -> Any:
        if name is None:
            return None
        if name not in row or row[name] in ("", None):
            if required:
                raise ValueError(f"column {name!r} is missing")
            return None
        return row[name]

    def parsed(name: str, convert: Any) -> Any:
        try:
            return convert(column(name))
        except (TypeError, ValueError) as error:
            raise ValueError(f"column {name!r}: {error}") from error

    propensity = parsed(mapping.propensity, _finite)
    if not 0 < propensity <= 1:
        raise ValueError(f"column {mapping.propensity!r}: propensity {propensity} not in (0, 1]")
    context = mapping.context
    age = column(context.age, required=False)
    customer = {
        "segment": column(context.segment, required=False) or "unknown",
        "age": float(age) if age is not None else 0.0,
        "products_held": _list(column(context.products_held, required=False)),
        "attributes": {
            name: row[name] for name in context.attributes if row.get(name) not in ("", None)
        },
    }
    position = column(mapping.position, required=False)
    candidates = column(mapping.candidates, required=False)
    return LoggedShow(
        line=number,
        timestamp=parsed(mapping.timestamp, _timestamp),
        offer_id=str(column(mapping.offer_id)),
        reward=parsed(mapping.reward, _finite),
        propensity=propensity,
        position=int(position) if position is not None else 1,
        candidates=_list(candidates) if candidates is not None else None,
        customer=customer,
        channel=str(column(context.channel, required=False) or "unknown"),
        event_type=str(column(context.event_type, required=False) or "unknown"),
    )
