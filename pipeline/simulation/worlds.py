"""The simulated worlds `nbo demo --world NAME` can run in, by name.

- `bank` (the default): segments and age bands drive what customers make of each offer
  (`pipeline.simulation.world`), with the sample catalogue (`data/sample/offers.csv`).
- `households`: income band, region, household and products held drive it, each offer in its
  own way, with a catalogue of its own (`pipeline.simulation.households`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from pipeline.simulation.households import HouseholdsWorld
from pipeline.simulation.world import World


class SimulatedWorld(Protocol):
    """What the closed loop needs of a world: its catalogue and customers, their journey events,
    and the hidden truth the channel answers with."""

    def offers(self) -> list[dict[str, Any]]: ...

    def new_offer(self) -> dict[str, Any]: ...

    def customer_records(self) -> list[dict[str, Any]]: ...

    def events(self, count: int) -> list[dict[str, Any]]: ...

    def launch(self, offer_id: str) -> None: ...

    def p_accept(
        self, customer_id: str, offer_id: str, category: str, phase: str, unanswered: int
    ) -> float: ...


# name → (customers, seed) → the world
WORLDS: dict[str, Callable[[int, int], SimulatedWorld]] = {
    "bank": World,
    "households": HouseholdsWorld,
}
DEFAULT_WORLD = "bank"


def make_world(name: str, customers: int, seed: int) -> SimulatedWorld:
    """The world called `name`, with `customers` customers, seeded.

    >>> make_world("households", 10, 1).offers()[0]["category"]
    'card'
    """
    if name not in WORLDS:
        raise ValueError(f"unknown world {name!r}; choose one of {', '.join(WORLDS)}")
    return WORLDS[name](customers, seed)
