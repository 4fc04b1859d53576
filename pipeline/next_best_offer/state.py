"""A customer's state in the ranker: the decisions still waiting for a response, and contacts.

Quix stores state as JSON per message key and reads a key's value whole, so the layout follows
how often each part is needed:

- the *index* (one small value per customer) is read and written on every record: per pending
  decision its time, the earliest time one of its offers can expire (`due`, so that deciding
  does not look at every pending offer each time) and, per offer, when it was shown (None until
  an impression arrives); per offer whose silence was told before its response window ended
  (`pipeline.next_best_offer.silence`), when it was shown, until a late answer or the window's
  end; per channel the recent impression times for the daily contact limit;
- each pending decision's *details* (the features, P(accept) and value of each offer at decision
  time, the challenger's shadow choice) are written once, under the decision's own key, and read
  only when a label for it arrives or it expires.

So a customer's record stays a small fraction of what every pending decision's features
would weigh.

Memory is bounded: at most `PENDING_PER_CUSTOMER` pending decisions (the oldest is forgotten)
and `CHANNEL_HISTORY` impression times per channel; a decision is dropped when all its offers
are resolved or expired.

A decision's details are a typed record, `DecisionDetails`, stored with the number of its
layout (`LAYOUT`); a record of an earlier layout still loads, so state written before a change
of layout is read after it.

>>> book = CustomerDecisions(MemoryState())
>>> card = PendingOffer(features={"age": 0.3}, p_accept=0.2, value_now=50.0, propensity=1.0)
>>> book.add("d-1", 100.0, 3700.0, DecisionDetails(offers={"card": card}, first="card"))
>>> book.index["pending"]["d-1"]
{'at': 100.0, 'due': 3700.0, 'shown': {'card': None}}
>>> book.details("d-1").offers["card"].p_accept
0.2
>>> book.resolve("d-1", "card"); "d-1" in book.pending
False
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from pipeline.contracts.schemas import GroupName

PENDING_PER_CUSTOMER = 20
CHANNEL_HISTORY = 50
INDEX_KEY = "index"
_DETAILS_PREFIX = "decision:"
# The layout of stored decision details. 1 (no number stored): one-letter keys per offer
# (x features, p P(accept), v value now, q propensity, r rank); 2: `DecisionDetails` as named.
LAYOUT = 2
_LAYOUT_1_OFFER = {"x": "features", "p": "p_accept", "v": "value_now", "q": "propensity",
                   "r": "rank"}  # fmt: skip


@dataclass(frozen=True)
class PendingOffer:
    """What the ranker knew of one offer of a decision when it decided: what the offer's label
    is told with."""

    features: dict[str, float]
    p_accept: float
    value_now: float
    propensity: float | None = None  # None in decisions stored before propensities were kept
    rank: int | None = None  # None in decisions stored before ranks were kept


@dataclass(frozen=True)
class DecisionDetails:
    """A pending decision's details: its offers, the one put first, and what made it."""

    offers: dict[str, PendingOffer]
    first: str
    customer: str = ""
    model: str = ""  # the model version that chose the offers
    feature_set: str = ""
    shadow: dict[str, float] | None = None  # the challenger's view, for its off-policy estimate
    challenger: str | None = None
    group: GroupName = "treatment"  # control: a baseline chose the offers
    extra: dict[str, Any] = field(default_factory=dict)  # fields of a later layout, kept

    def stored(self) -> dict[str, Any]:
        """As stored in the state (JSON), with its layout's number. Built field by field: the
        features are stored as they are, not copied (`asdict` would copy every one)."""
        return {
            "layout": LAYOUT,
            **self.extra,
            "offers": {offer_id: dict(vars(offer)) for offer_id, offer in self.offers.items()},
            "first": self.first,
            "customer": self.customer,
            "model": self.model,
            "feature_set": self.feature_set,
            "shadow": self.shadow,
            "challenger": self.challenger,
            "group": self.group,
        }

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> DecisionDetails:
        """Details as stored by this layout or an earlier one."""
        values = dict(stored)
        layout = values.pop("layout", 1)
        offers = values.pop("offers")
        if layout == 1:
            offers = {
                offer_id: {_LAYOUT_1_OFFER[key]: value for key, value in offer.items()}
                for offer_id, offer in offers.items()
            }
        known = {name for name in cls.__dataclass_fields__ if name not in ("offers", "extra")}
        return cls(
            offers={offer_id: PendingOffer(**offer) for offer_id, offer in offers.items()},
            **{name: values.pop(name) for name in known if name in values},
            extra=values,
        )


class KeyedState(Protocol):
    """What this module needs of a Quix `State` (one message key's store)."""

    def get(self, key: str, default: Any = None) -> Any: ...
    def set(self, key: str, value: Any) -> None: ...
    def delete(self, key: str) -> None: ...


class MemoryState(dict[str, Any]):
    """A `KeyedState` in a dict: for deciding outside a stream (unit tests, notebooks)."""

    def set(self, key: str, value: Any) -> None:
        self[key] = value

    def delete(self, key: str) -> None:
        self.pop(key, None)


def new_index() -> dict[str, Any]:
    return {"pending": {}, "channel_shown": {}}


class CustomerDecisions:
    """One customer's pending decisions and contacts, for the duration of one record."""

    def __init__(self, state: KeyedState) -> None:
        self._state = state
        self.index: dict[str, Any] = state.get(INDEX_KEY) or new_index()
        self._details: dict[str, DecisionDetails] = {}  # read or written during this record

    @property
    def pending(self) -> dict[str, dict[str, Any]]:
        """decision id -> {"at": .., "due": .., "shown": {offer id: shown at or None}} and,
        once an offer's silence is told, "silent": {offer id: shown at}"""
        pending: dict[str, dict[str, Any]] = self.index["pending"]
        return pending

    def channel_shown(self, channel: str) -> list[float]:
        shown: list[float] = self.index["channel_shown"].get(channel, [])
        return shown

    def add(self, decision_id: str, at: float, due: float, details: DecisionDetails) -> None:
        """Remember a decision made at `at` whose offers can first expire at `due`."""
        self.pending[decision_id] = {"at": at, "due": due, "shown": dict.fromkeys(details.offers)}
        self._details[decision_id] = details
        self._state.set(_DETAILS_PREFIX + decision_id, details.stored())
        while len(self.pending) > PENDING_PER_CUSTOMER:
            oldest = min(self.pending, key=lambda d: self.pending[d]["at"])
            self._forget(oldest)

    def details(self, decision_id: str) -> DecisionDetails:
        """What a pending decision knew of each offer; KeyError for one not pending."""
        if decision_id not in self._details:
            if decision_id not in self.pending:
                raise KeyError(f"decision {decision_id} is not pending")
            stored = self._state.get(_DETAILS_PREFIX + decision_id)
            self._details[decision_id] = DecisionDetails.from_stored(stored)
        return self._details[decision_id]

    def shown(self, decision_id: str, offer_id: str, at: float, channel: str) -> None:
        self.pending[decision_id]["shown"][offer_id] = at
        times = self.index["channel_shown"].setdefault(channel, [])
        times.append(at)
        del times[:-CHANNEL_HISTORY]

    def silent(self, decision_id: str) -> dict[str, float]:
        """offer id -> shown at, for the offers of a decision whose silence has been told."""
        silent: dict[str, float] = self.pending[decision_id].get("silent", {})
        return silent

    def silenced(self, decision_id: str, offer_id: str) -> None:
        """A shown offer's silence was told: it waits only for a late answer now."""
        decision = self.pending[decision_id]
        decision.setdefault("silent", {})[offer_id] = decision["shown"].pop(offer_id)

    def resolve(self, decision_id: str, offer_id: str) -> None:
        """An offer of a decision needs nothing more; a decision with none left is dropped."""
        decision = self.pending[decision_id]
        decision["shown"].pop(offer_id, None)
        decision.get("silent", {}).pop(offer_id, None)
        if not decision["shown"] and not decision.get("silent"):
            self._forget(decision_id)

    def _forget(self, decision_id: str) -> None:
        del self.pending[decision_id]
        self._details.pop(decision_id, None)
        self._state.delete(_DETAILS_PREFIX + decision_id)

    def save(self) -> None:
        self._state.set(INDEX_KEY, self.index)
