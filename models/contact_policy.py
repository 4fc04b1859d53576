"""Contact policy: how often an offer, and how many offers, a customer may be shown.

- at most `max_impressions` impressions of an offer per customer within the offer's contact
  window (the offer's own `max_impressions`, else the category's, else the default);
- at most `channel_daily_limit` impressions per channel per customer per day.

An offer is allowed while its impressions in the window are below `max_impressions(offer)`.

>>> policy = ContactPolicy(default_max_impressions=3, category_max_impressions={"loan": 1})
>>> policy.max_impressions({"category": "loan", "max_impressions": None})
1
>>> policy.max_impressions({"category": "card", "max_impressions": 5})
5
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.time_value import SECONDS_PER_DAY


@dataclass(frozen=True)
class ContactPolicy:
    default_max_impressions: int = 3
    category_max_impressions: dict[str, int] = field(default_factory=dict)
    channel_daily_limit: int = 5
    fatigue_share: float = 0.25

    def max_impressions(self, offer: dict[str, Any]) -> int:
        own = offer.get("max_impressions")
        if own is not None:
            return int(own)
        return self.category_max_impressions.get(offer["category"], self.default_max_impressions)

    def channel_allowed(self, shown_at: list[float], now: float) -> bool:
        """`shown_at`: times of this customer's impressions on the channel."""
        return sum(1 for t in shown_at if now - t < SECONDS_PER_DAY) < self.channel_daily_limit
