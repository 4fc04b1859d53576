"""How a record's raw values read, the same in every reader (files, topics, logs, the pyfunc).

>>> as_utc(datetime(2026, 3, 2, 9)).isoformat()
'2026-03-02T09:00:00+00:00'
>>> parse_time("2026-03-02T10:00:00+01:00").isoformat()
'2026-03-02T10:00:00+01:00'
>>> split_list(" card | savings||")
['card', 'savings']
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


def as_utc(moment: datetime) -> datetime:
    """A time that names no zone is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def parse_time(value: str | float) -> datetime:
    """An ISO 8601 text, or seconds since the epoch; naive means UTC."""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), UTC)
    return as_utc(datetime.fromisoformat(value))


def split_list(text: str) -> list[str]:
    """A list written in one text cell, `a|b|c`; empty parts are dropped."""
    return [part.strip() for part in text.split("|") if part.strip()]


def holdings(customer: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(the products the CRM says the customer holds, the categories they accepted through nbo
    that the CRM does not list yet): a customer's `products_held` has both, `acquired` the
    second (`pipeline.valid_offers.state.customer_view`).

    >>> holdings({"products_held": ["card", "savings"], "acquired": ["savings"]})
    (['card'], ['savings'])
    >>> holdings({"products_held": ["card"]})
    (['card'], [])
    """
    acquired = list(customer.get("acquired") or ())
    held = [product for product in customer.get("products_held") or () if product not in acquired]
    return held, acquired
