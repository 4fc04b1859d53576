"""A customer's current state, as the Valid Offers μ-product keeps it per customer id.

The state is a JSON-ready dict (Quix stores state as JSON per message key) changed only through
the functions here, each applying one kind of record:

- `apply_profile`: the latest CRM profile;
- `apply_event`: a journey event (recent events, bounded, and the last time of each type);
- `apply_interaction`: contact history per offer (impressions in the window, unanswered
  impressions since the last response) and products acquired by accepting or converting.

Memory is bounded: at most `RECENT_EVENTS` recent events, `EVENT_TYPES` event types,
`IMPRESSIONS_KEPT` impressions per offer, and impressions older than `CONTACT_HORIZON_DAYS`
are dropped.

A customer with no profile yet gets `DEFAULT_PROFILE`: age 0 and no income, segment `mass`, no
products and no consents, with `known` false, so that eligibilities gating on age, income or
consent exclude offers until the CRM has spoken.

>>> state = new_state()
>>> apply_event(state, "travel_booking", 1_000.0)
>>> apply_interaction(state, "card-01", "card", "impression", 1_100.0)
>>> contact_counts(state, "card-01", now=1_200.0, window_days=30)
(1, 1)
>>> customer_view(state, "C1")["known"]
False
"""

from __future__ import annotations

from typing import Any

from models.time_value import SECONDS_PER_DAY
from pipeline.contracts.schemas import POSITIVE_OUTCOMES

RECENT_EVENTS = 20
EVENT_TYPES = 256
IMPRESSIONS_KEPT = 50
CONTACT_HORIZON_DAYS = 180.0

State = dict[str, Any]

DEFAULT_PROFILE: dict[str, Any] = {
    "age": 0,
    "segment": "mass",
    "region": "unknown",
    "income": 0.0,
    "tenure_years": 0.0,
    "products_held": [],
    "consents": [],
    "updated_at": None,
    "attributes": {},
}
RESPONSES = frozenset({"click", "accept", "dismiss", "convert"})


def new_state() -> State:
    return {"profile": None, "recent": [], "last_seen": {}, "acquired": [], "contacts": {}}


def apply_profile(state: State, profile: dict[str, Any]) -> None:
    state["profile"] = profile


def apply_event(state: State, event_type: str, at: float) -> None:
    recent = state["recent"]
    recent.append([event_type, at])
    del recent[:-RECENT_EVENTS]
    last_seen = state["last_seen"]
    if event_type in last_seen or len(last_seen) < EVENT_TYPES:
        last_seen[event_type] = max(at, last_seen.get(event_type, at))


def apply_interaction(state: State, offer_id: str, category: str, outcome: str, at: float) -> None:
    contact = state["contacts"].setdefault(offer_id, {"shown": [], "unanswered": 0})
    if outcome == "impression":
        shown = contact["shown"]
        shown.append(at)
        horizon = at - CONTACT_HORIZON_DAYS * SECONDS_PER_DAY
        contact["shown"] = [t for t in shown if t >= horizon][-IMPRESSIONS_KEPT:]
        contact["unanswered"] += 1
    elif outcome in RESPONSES:
        contact["unanswered"] = 0
        if outcome in POSITIVE_OUTCOMES and category not in state["acquired"]:
            state["acquired"].append(category)


def contact_counts(state: State, offer_id: str, now: float, window_days: float) -> tuple[int, int]:
    """(impressions in the last `window_days`, impressions since the last response)."""
    contacts = state["contacts"]
    contact = contacts.get(offer_id) if contacts else None
    if contact is None:
        return 0, 0
    since = now - window_days * SECONDS_PER_DAY
    return sum(1 for t in contact["shown"] if t >= since), contact["unanswered"]


def trigger_time(state: State, triggers: tuple[str, ...] | list[str]) -> float | None:
    """The latest time any of `triggers` happened to this customer, or None."""
    last_seen = state["last_seen"]
    times = [last_seen[t] for t in triggers if t in last_seen]
    return max(times) if times else None


def days_since_trigger(
    state: State, triggers: tuple[str, ...] | list[str], now: float
) -> float | None:
    """Days from the latest of `triggers` to `now` (to the microday), or None if none happened."""
    latest = trigger_time(state, triggers)
    return None if latest is None else round((now - latest) / SECONDS_PER_DAY, 6)


def customer_view(state: State, customer_id: str) -> dict[str, Any]:
    """What rules and the ranker see as `customer`: the profile, `known`, and in
    `products_held` the CRM's products and the categories accepted since.

    `acquired` names the accepted categories the CRM does not list: rules read them as held (do
    not sell it twice), and the ranker's features keep them apart from what the CRM says, since
    an accept says something else about a customer than a product they chose elsewhere.

    >>> state = new_state()
    >>> apply_profile(state, {**DEFAULT_PROFILE, "products_held": ["card"]})
    >>> apply_interaction(state, "s-1", "savings", "accept", 1.0)
    >>> view = customer_view(state, "C1")
    >>> view["products_held"], view["acquired"]
    (['card', 'savings'], ['savings'])
    """
    profile = state["profile"]
    view = dict(profile) if profile is not None else {**DEFAULT_PROFILE}
    view["customer_id"] = customer_id
    view["known"] = profile is not None
    held = list(view["products_held"])
    acquired = [category for category in state["acquired"] if category not in held]
    view["products_held"] = held + acquired
    view["acquired"] = acquired
    return view
