"""What a gateway knows of the decisions on `next_best_offers`, and who waits for them.

One `DecisionBoard` per process, owned by its event loop (the follower thread hands batches over
with `call_soon_threadsafe`; nothing else writes it). It keeps, bounded:

- each customer's latest decision (the most recently decided customers first to stay);
- each recent decision's customer, channel and offers, to check interactions against;
- the requests waiting for the decision of an event they posted (request-reply);
- the server-sent-event streams open per customer.

A stream whose client reads too slowly to keep up is closed rather than buffered without bound:
the browser's `EventSource` reconnects by itself and reads the latest decision again.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

STREAM_BUFFER = 32  # decisions queued for one slow stream before it is closed


@dataclass(frozen=True)
class DecisionRef:
    """What an interaction is checked against."""

    customer_id: str
    channel: str
    offer_ids: tuple[str, ...]


@dataclass(eq=False)  # each stream is itself: kept in a set per customer
class Stream:
    """One open server-sent-event stream of a customer's decisions."""

    queue: asyncio.Queue[dict[str, Any]] = field(
        default_factory=lambda: asyncio.Queue(STREAM_BUFFER)
    )
    overflowed: bool = False


@dataclass
class BoardCounts:
    decisions: int = 0
    delivered_to_waiters: int = 0
    delivered_to_streams: int = 0
    streams_closed_slow: int = 0


class DecisionBoard:
    def __init__(self, customers_kept: int, decisions_kept: int) -> None:
        self._customers_kept = customers_kept
        self._decisions_kept = decisions_kept
        self._latest: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._refs: OrderedDict[str, DecisionRef] = OrderedDict()
        self._waiters: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}
        self._streams: dict[str, set[Stream]] = {}
        self.counts = BoardCounts()

    def publish(self, decisions: list[dict[str, Any]]) -> None:
        """Decisions as read from the topic, in order per partition."""
        for decision in decisions:
            self._remember(decision)
            for waiter in self._waiters.pop(decision["event_id"], []):
                if not waiter.done():
                    waiter.set_result(decision)
                    self.counts.delivered_to_waiters += 1
            for stream in self._streams.get(decision["customer_id"], ()):
                self._offer(stream, decision)

    def latest(self, customer_id: str) -> dict[str, Any] | None:
        return self._latest.get(customer_id)

    def customers(self, count: int) -> list[str]:
        """The `count` customers decided for most recently, latest first."""
        return [customer for customer, _ in zip(reversed(self._latest), range(count), strict=False)]

    def decision(self, decision_id: str) -> DecisionRef | None:
        return self._refs.get(decision_id)

    @contextmanager
    def expecting(self, event_id: str) -> Iterator[asyncio.Future[dict[str, Any]]]:
        """A future the decision on `event_id` completes, for as long as the block runs. Enter
        it before the event is produced, so that a decision read meanwhile is not missed."""
        waiting: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(event_id, []).append(waiting)
        try:
            yield waiting
        finally:
            waiters = self._waiters.get(event_id, [])
            if waiting in waiters:
                waiters.remove(waiting)
            if not waiters:
                self._waiters.pop(event_id, None)

    async def decision_for(self, event_id: str, customer_id: str,
                           waiting: asyncio.Future[dict[str, Any]],
                           timeout: float) -> dict[str, Any] | None:  # fmt: skip
        """The decision on event `event_id` of `customer_id`: the customer's latest if it is on
        that event (a request sent again), else once `waiting` completes; None after `timeout`
        seconds."""
        latest = self._latest.get(customer_id)
        if latest is not None and latest["event_id"] == event_id:
            return latest
        try:
            return await asyncio.wait_for(asyncio.shield(waiting), timeout)
        except TimeoutError:
            return None

    def waiting(self) -> int:
        return sum(len(waiters) for waiters in self._waiters.values())

    @contextmanager
    def stream(self, customer_id: str) -> Iterator[Stream]:
        """A stream of `customer_id`'s decisions from now on, for as long as the block runs."""
        stream = Stream()
        self._streams.setdefault(customer_id, set()).add(stream)
        try:
            yield stream
        finally:
            streams = self._streams[customer_id]
            streams.discard(stream)
            if not streams:
                del self._streams[customer_id]

    def __len__(self) -> int:
        """Customers whose latest decision is kept."""
        return len(self._latest)

    def open_streams(self) -> int:
        return sum(len(streams) for streams in self._streams.values())

    def _remember(self, decision: dict[str, Any]) -> None:
        self.counts.decisions += 1
        customer = decision["customer_id"]
        self._latest[customer] = decision
        self._latest.move_to_end(customer)
        if len(self._latest) > self._customers_kept:
            self._latest.popitem(last=False)
        offers = tuple(offer["offer_id"] for offer in decision["offers"])
        self._refs[decision["decision_id"]] = DecisionRef(customer, decision["channel"], offers)
        if len(self._refs) > self._decisions_kept:
            self._refs.popitem(last=False)

    def _offer(self, stream: Stream, decision: dict[str, Any]) -> None:
        try:
            stream.queue.put_nowait(decision)
            self.counts.delivered_to_streams += 1
        except asyncio.QueueFull:
            if not stream.overflowed:
                stream.overflowed = True
                self.counts.streams_closed_slow += 1
