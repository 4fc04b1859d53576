"""The simulated worlds `nbo demo --world NAME` can run in, by name.

- `bank` (the default): segments and age bands drive what customers make of each offer
  (`pipeline.simulation.world`), with the sample catalogue (`data/sample/offers.csv`).
- `households`: income band, region, household and products held drive it, each offer in its
  own way, with a catalogue of its own (`pipeline.simulation.households`).
- `curves`: the bank's customers, whose interest in each offer moves with time its own way, not
  as the catalogue documents it: evergreen offers, interest periods half and twice as long, a
  secondary period worth more (`pipeline.simulation.curves`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from pipeline.simulation.channel import Customers
from pipeline.simulation.curves import CurvesWorld
from pipeline.simulation.households import HouseholdsWorld
from pipeline.simulation.world import World


class SimulatedWorld(Customers, Protocol):
    """What the closed loop needs of a world: its catalogue and customers, their journey events,
    and the hidden truth the channel answers with (`Customers.p_accept`)."""

    def offers(self) -> list[dict[str, Any]]: ...

    def new_offer(self) -> dict[str, Any]: ...

    def customer_records(self) -> list[dict[str, Any]]: ...

    def events(self, count: int) -> list[dict[str, Any]]: ...

    def launch(self, offer_id: str) -> None: ...


# name → (customers, seed) → the world
WORLDS: dict[str, Callable[[int, int], SimulatedWorld]] = {
    "bank": World,
    "households": HouseholdsWorld,
    "curves": CurvesWorld,
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
