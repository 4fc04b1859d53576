"""The gateway's HTTP API: what a channel may send, checked before anything reaches a topic.

Every request names its channel by its API key (`X-API-Key`, or `Authorization: Bearer`; the
decision stream also takes `?api_key=`, since a browser's `EventSource` cannot set a header).
In order, a request is refused with:

- 401: no key, or one that is not (or no longer) in the keys file;
- 429: the key is over its rate (`Retry-After` says when to try again);
- 413: a body over `NBO_GATEWAY_MAX_BODY_BYTES`; 422: a body that is not the record (the
  error names the field);
- 403: a record of another channel than the key's;
- 409: an interaction with a decision the gateway does not know, of another customer, or with
  an offer that decision did not rank.

Only then is the record produced, and the answer waits for Kafka's acknowledgement.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response
from fastapi.sse import EventSourceResponse, ServerSentEvent

from pipeline.contracts.schemas import Decision, Interaction, JourneyEvent
from pipeline.gateway.decisions import DecisionBoard
from pipeline.gateway.keys import ChannelKeys
from pipeline.gateway.limits import RateLimiter
from pipeline.gateway.metrics import GatewayMetrics
from pipeline.gateway.sink import AcknowledgedProducer, NotAcknowledged


@dataclass(frozen=True)
class Accepted:
    """The body of a 202: the record is on Kafka."""

    id: str
    topic: str


@dataclass
class Gateway:
    """Everything the routes use, built once in `pipeline.gateway.app`."""

    keys: ChannelKeys
    limiter: RateLimiter
    board: DecisionBoard
    sink: AcknowledgedProducer
    metrics: GatewayMetrics
    max_wait_ms: int


async def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def _presented_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip()
    return None


def _channel(request: Request, key: str | None) -> str:
    gateway: Gateway = request.app.state.gateway
    channel = gateway.keys.channel_of(key) if key else None
    if channel is None:
        raise HTTPException(401, "an API key is needed (X-API-Key)" if not key else "unknown key",
                            headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
    if not gateway.limiter.allow(key or ""):
        raise HTTPException(429, f"over the rate of {gateway.limiter.rate:g} requests/s",
                            headers={"Retry-After": "1"})  # fmt: skip
    return channel


async def key_channel(request: Request) -> str:
    """The channel of the request's key (401, 429 otherwise)."""
    return _channel(request, _presented_key(request))


async def stream_channel(request: Request, api_key: Annotated[str | None, Query()] = None) -> str:
    """As `key_channel`, the key also taken from `?api_key=` (for `EventSource`)."""
    return _channel(request, _presented_key(request) or api_key)


# Dependencies are `async def`: FastAPI runs a plain `def` in a thread pool, a thread hand-off
# per request and dependency
Channel = Annotated[str, Depends(key_channel)]
StreamChannel = Annotated[str, Depends(stream_channel)]
Used = Annotated[Gateway, Depends(gateway_of)]


def decision_response(decision: dict[str, Any]) -> Response:
    """A decision as read from the topic, its JSON written by orjson (a tenth of the time)."""
    return Response(orjson.dumps(decision), media_type="application/json")


def decision_event(decision: dict[str, Any]) -> ServerSentEvent:
    return ServerSentEvent(raw_data=orjson.dumps(decision).decode(), event="decision",
                           id=decision["decision_id"])  # fmt: skip


def _own_channel(record_channel: str, channel: str, what: str) -> None:
    if record_channel != channel:
        raise HTTPException(403, f"{what} is on channel {record_channel!r}; this key is "
                                 f"for {channel!r}")  # fmt: skip


async def _produce(gateway: Gateway, topic: str, key: str, record: Any) -> None:
    try:
        await gateway.sink.send(topic, key, record.model_dump_json().encode())
    except NotAcknowledged as error:
        raise HTTPException(503, f"not written to Kafka, send it again: {error}") from error
    gateway.metrics.produced.labels(topic).inc()


router = APIRouter(prefix="/v1", tags=["channels"])


@router.post(
    "/events",
    status_code=202,
    response_model=Decision | Accepted,
    responses={504: {"description": "no decision for the event within `wait` ms"}},
)
async def post_event(
    event: JourneyEvent,
    channel: Channel,
    gateway: Used,
    wait: Annotated[int, Query(ge=0, description="ms to wait for the decision (0: do not)")] = 0,
) -> Any:
    """A journey event; 202 once Kafka has it. With `wait`, 200 and the decision made for this
    very event, or 504 when none came in time."""
    _own_channel(event.channel, channel, f"event {event.event_id}")
    if wait > gateway.max_wait_ms:
        raise HTTPException(422, f"wait: at most {gateway.max_wait_ms} ms")
    if not wait:
        await _produce(gateway, "events", event.customer_id, event)
        return Accepted(event.event_id, "events")
    with gateway.board.expecting(event.event_id) as waiting:  # before producing: none missed
        await _produce(gateway, "events", event.customer_id, event)
        decision = await gateway.board.decision_for(
            event.event_id, event.customer_id, waiting, wait / 1000
        )
    if decision is None:
        raise HTTPException(504, f"no decision for event {event.event_id} within {wait} ms; it "
                                 "is on Kafka and will be decided")  # fmt: skip
    return decision_response(decision)


@router.get("/customers", response_model=list[str])
async def recent_customers(
    _channel: Channel, gateway: Used, limit: Annotated[int, Query(ge=1, le=1000)] = 50
) -> list[str]:
    """The customers decided for most recently, latest first."""
    return gateway.board.customers(limit)


@router.get(
    "/customers/{customer_id}/decision",
    response_model=Decision,
    responses={404: {"description": "no decision known for this customer"}},
)
async def latest_decision(customer_id: str, _channel: Channel, gateway: Used) -> Any:
    """The customer's latest decision."""
    decision = gateway.board.latest(customer_id)
    if decision is None:
        raise HTTPException(404, f"no decision for customer {customer_id}")
    return decision_response(decision)


@router.get("/customers/{customer_id}/decisions", response_class=EventSourceResponse)
async def decision_stream(
    customer_id: str, _channel: StreamChannel, gateway: Used
) -> AsyncIterator[ServerSentEvent]:
    """Server-sent events: a comment once the stream follows the customer, the customer's latest
    decision, then each new one as it is made (event `decision`, id the decision id, data the
    Decision)."""
    with gateway.board.stream(customer_id) as stream:
        yield ServerSentEvent(comment=f"following {customer_id}")  # a client may post now
        latest = gateway.board.latest(customer_id)
        if latest is not None:
            yield decision_event(latest)
        while not stream.overflowed or not stream.queue.empty():
            decision = await stream.queue.get()
            yield decision_event(decision)


@router.post(
    "/interactions",
    status_code=202,
    response_model=Accepted,
    responses={409: {"description": "not an offer of a decision the gateway knows"}},
)
async def post_interaction(interaction: Interaction, channel: Channel, gateway: Used) -> Accepted:
    """An impression, click, accept, dismiss or convert of an offer of a decision."""
    _own_channel(interaction.channel, channel, f"interaction {interaction.interaction_id}")
    decision = gateway.board.decision(interaction.decision_id)
    if decision is None:
        raise HTTPException(409, f"unknown decision {interaction.decision_id}")
    if decision.customer_id != interaction.customer_id:
        raise HTTPException(409, f"decision {interaction.decision_id} is of another customer")
    if interaction.offer_id not in decision.offer_ids:
        raise HTTPException(409, f"offer {interaction.offer_id} is not in decision "
                                 f"{interaction.decision_id}")  # fmt: skip
    await _produce(gateway, "interactions", interaction.customer_id, interaction)
    return Accepted(interaction.interaction_id, "interactions")
