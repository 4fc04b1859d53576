"""The gateway μ-product: channels reach nbo over HTTP, without a Kafka client of their own.

Sources: HTTP requests, and `next_best_offers` (every partition, followed by each gateway
process itself, so that any process can answer for any customer). Sinks: `events` and
`interactions`, keyed by customer id. No database: what it serves comes from the topics.

    HTTP ─> api: key, rate, size, record, channel, decision checks ─> AcknowledgedProducer
                                                                      ─> events, interactions
    next_best_offers ─> TopicFollower ─> DecisionBoard ─> latest decision, request-reply,
                                                          server-sent events
    /healthz  /readyz  /metrics  /docs  / (the bank's page)

Run it with `nbo run gateway`; docs/gateway.md says how to run several behind a load balancer.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import orjson
import swagger_ui_bundle
import uvicorn
from confluent_kafka import Message
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as AsgiMessage

from pipeline.gateway import api
from pipeline.gateway.decisions import DecisionBoard
from pipeline.gateway.keys import ChannelKeys
from pipeline.gateway.limits import RateLimiter
from pipeline.gateway.metrics import GatewayMetrics
from pipeline.gateway.sink import AcknowledgedProducer
from pipeline.kafka.follow import TopicFollower
from pipeline.settings import Settings

log = logging.getLogger(__name__)

STAGE = "gateway"
PAGE = Path(__file__).resolve().parent / "page"


class DecisionFeed:
    """`next_best_offers` followed from its last `gateway_history` records per partition into
    the board, on the board's event loop. A record that is not a decision is logged with where it
    is and counted (not dead-lettered: every gateway process reads every record)."""

    def __init__(self, settings: Settings, bootstrap: str, board: DecisionBoard,
                 metrics: GatewayMetrics) -> None:  # fmt: skip
        self._board = board
        self._metrics = metrics
        self._loop: asyncio.AbstractEventLoop | None = None
        self.follower = TopicFollower(
            settings, bootstrap, [settings.topic_name("next_best_offers")], self._apply,
            name=f"{STAGE}-decisions", tail=settings.gateway_history,
        )  # fmt: skip

    async def start(self, timeout: float) -> None:
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self.follower.start, timeout)

    def _apply(self, batch: list[Message]) -> None:
        decisions = []
        for message in batch:
            try:
                decision = orjson.loads(message.value() or b"")
                # the fields the board reads: a record without them is not a decision
                _ = decision["event_id"], decision["customer_id"], decision["decision_id"]
                _ = [offer["offer_id"] for offer in decision["offers"]], decision["channel"]
            except (ValueError, KeyError, TypeError) as error:
                self._metrics.unreadable.inc()
                log.error("%s[%s]@%s: not a decision (%r), skipped", message.topic(),
                          message.partition(), message.offset(), error)  # fmt: skip
                continue
            decisions.append(decision)
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._board.publish, decisions)


class RequestMetrics:
    """Counts every answer by route template and status, and times it."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = asyncio.get_running_loop().time()

        async def sending(message: AsgiMessage) -> None:
            if message["type"] == "http.response.start":
                status = message["status"]
                route = getattr(scope.get("route"), "path", "unrouted")
                elapsed = asyncio.get_running_loop().time() - started
                self.metrics.latency.labels(route).observe(elapsed)
                self.metrics.requests.labels(route, str(status)).inc()
            await send(message)

        await self.app(scope, receive, sending)


def build(settings: Settings, bootstrap: str) -> FastAPI:
    """Wire the μ-product: the HTTP app with its sources and sinks, started by its lifespan."""
    metrics = GatewayMetrics()
    board = DecisionBoard(settings.gateway_customers_kept, settings.gateway_decisions_kept)
    feed = DecisionFeed(settings, bootstrap, board, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sink = AcknowledgedProducer(settings, bootstrap)
        app.state.gateway = api.Gateway(
            keys=ChannelKeys(settings.gateway_keys_file),
            limiter=RateLimiter(settings.gateway_rate, settings.gateway_burst),
            board=board, sink=sink, metrics=metrics, max_wait_ms=settings.gateway_max_wait_ms,
        )  # fmt: skip
        await feed.start(settings.broker_start_timeout)
        log.info("%s: %d keys, %d customers' decisions read", STAGE,
                 len(app.state.gateway.keys), len(board))  # fmt: skip
        try:
            yield
        finally:
            feed.follower.stop()
            await asyncio.to_thread(sink.close)

    app = FastAPI(
        title="nbo gateway",
        summary="Next best offers for channels: journey events in, decisions out, reactions in.",
        version="1",
        lifespan=lifespan,
        docs_url=None,  # served below with the bundled Swagger UI (no CDN)
        redoc_url=None,
        max_body_size=settings.gateway_max_body_bytes,
    )
    app.include_router(api.router)
    _operations(app, feed, board, metrics)
    _page(app)
    app.add_middleware(RequestMetrics, metrics=metrics)
    if settings.gateway_cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.gateway_cors_origins,
            allow_methods=["GET", "POST"], allow_headers=["X-API-Key", "Authorization",
                                                          "Content-Type"],
        )  # fmt: skip
    return app


def _operations(app: FastAPI, feed: DecisionFeed, board: DecisionBoard,
                metrics: GatewayMetrics) -> None:  # fmt: skip
    metrics.follow("nbo_gateway_open_streams", "server-sent-event streams open",
                   board.open_streams)  # fmt: skip
    metrics.follow("nbo_gateway_waiting_requests", "requests waiting for a decision",
                   board.waiting)  # fmt: skip
    counts = board.counts
    metrics.follow("nbo_gateway_decisions_read", "decisions read from next_best_offers",
                   lambda: counts.decisions)  # fmt: skip
    metrics.follow("nbo_gateway_decisions_to_waiting_requests",
                   "decisions answered to a request waiting for them",
                   lambda: counts.delivered_to_waiters)  # fmt: skip
    metrics.follow("nbo_gateway_decisions_to_streams", "decisions sent on open streams",
                   lambda: counts.delivered_to_streams)  # fmt: skip
    metrics.follow("nbo_gateway_streams_closed_slow",
                   "streams closed because their client read too slowly",
                   lambda: counts.streams_closed_slow)  # fmt: skip

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    async def readyz(request: Request) -> JSONResponse:
        """The broker answers and `next_best_offers` is followed to its end: 200, else 503."""
        sink: AcknowledgedProducer = request.app.state.gateway.sink
        checks = {
            "broker": await asyncio.to_thread(sink.reachable),
            "decisions_followed": feed.follower.following,
        }
        return JSONResponse({"ready": all(checks.values()), **checks},
                            status_code=200 if all(checks.values()) else 503)  # fmt: skip

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _page(app: FastAPI) -> None:
    """The bank's page at `/`, and the API's interactive docs at `/docs`."""
    app.mount("/page", StaticFiles(directory=PAGE), name="page")
    app.mount("/swagger", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger")

    @app.get("/", include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse((PAGE / "index.html").read_text())

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="nbo gateway",
            swagger_js_url="/swagger/swagger-ui-bundle.js",
            swagger_css_url="/swagger/swagger-ui.css",
            swagger_favicon_url="/swagger/favicon-32x32.png",
        )


def run(settings: Settings, bootstrap: str) -> None:
    """Serve until stopped (SIGTERM or Ctrl-C: uvicorn finishes the requests in flight)."""
    app = build(settings, bootstrap)
    config = uvicorn.Config(
        app, host=settings.gateway_host, port=settings.gateway_port,
        access_log=False,  # a stream's URL carries its key (`?api_key=`): never log it
        log_level="info", lifespan="on", timeout_graceful_shutdown=10,
    )  # fmt: skip
    server = uvicorn.Server(config)
    # uvicorn stops gracefully on SIGTERM, then raises it again for the handler it found: after
    # its graceful stop that is a clean exit (0), as for the other μ-products
    signal.signal(signal.SIGTERM, lambda _signum, _frame: None)
    fd = settings.gateway_socket_fd  # bound by the process that started this one: no race
    server.run(sockets=None if fd is None else [socket.socket(fileno=fd)])
