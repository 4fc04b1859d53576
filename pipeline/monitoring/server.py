"""A μ-product's own HTTP port: `/metrics` for Prometheus, `/healthz` and `/readyz` for probes.

Served from a thread of its own (a loop busy with a record does not delay a scrape), on
`NBO_METRICS_PORT` when it is set; nothing is served otherwise.

- `/healthz` (liveness): 200 unless the μ-product has stalled. A stalled one stops on its own,
  and exits if it cannot; the probe lets a supervisor see it meanwhile.
- `/readyz` (readiness): 200 once it processes its sources and its progress watch has read the
  group's offsets lately; 503 while it loads its tables, recovers its state, or cannot reach
  the broker, with the reason as the body.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pipeline.errors import ConfigError
from pipeline.monitoring.metrics import REGISTRY, StateStoreSize

if TYPE_CHECKING:
    from pipeline.settings import Settings

log = logging.getLogger(__name__)


class Waiting(Protocol):
    @property
    def name(self) -> str: ...


class ProgressWatch(Protocol):
    """What the probes read of a μ-product's progress watch (`pipeline.kafka.progress`)."""

    @property
    def stalled(self) -> Sequence[Waiting]:
        """The partitions it found stalled (none: not stalled)."""
        ...

    @property
    def last_look(self) -> float:
        """When it last read the group's offsets (monotonic seconds)."""
        ...


class Probes:
    """What the probes answer for one μ-product: its progress watch, once it runs, says whether
    it is stalled and when it last read the group's offsets."""

    def __init__(self, stage: str, fresh_within: float) -> None:
        self.stage = stage
        self._fresh_within = fresh_within  # seconds a look at the group's offsets stays recent
        self._monitor: ProgressWatch | None = None

    def watch(self, monitor: ProgressWatch | None) -> None:
        """Answer from `monitor` (None: the μ-product stopped processing)."""
        self._monitor = monitor

    def alive(self) -> tuple[bool, str]:
        monitor = self._monitor
        if monitor is not None and monitor.stalled:
            names = ", ".join(p.name for p in monitor.stalled)
            return False, f"{self.stage} stalled on {names}"
        return True, f"{self.stage} alive"

    def ready(self) -> tuple[bool, str]:
        monitor = self._monitor
        if monitor is None:
            return False, f"{self.stage} is not processing yet (loading, or stopped)"
        alive, why = self.alive()
        if not alive:
            return False, why
        since = time.monotonic() - monitor.last_look
        if since > self._fresh_within:
            return False, f"{self.stage} has not read its group's offsets for {since:.0f} s"
        return True, f"{self.stage} ready"


def _handler(probes: Probes) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._answer(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
            elif self.path in ("/healthz", "/readyz"):
                ok, why = probes.alive() if self.path == "/healthz" else probes.ready()
                self._answer(200 if ok else 503, f"{why}\n".encode(), "text/plain")
            else:
                self._answer(404, b"not found: /metrics, /healthz or /readyz\n", "text/plain")

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Scrapes and probes come every few seconds: not logged."""

    return Handler


@contextmanager
def serving(settings: Settings, stage: str, state_dir: Path | None = None) -> Iterator[Probes]:
    """The probes of `stage`, served with its metrics on `settings.metrics_port` while the block
    runs (not served when it is unset); `state_dir`: its state stores, whose size is a metric."""
    probes = Probes(stage, fresh_within=3 * settings.progress_interval + 30.0)
    if settings.metrics_port is None:
        yield probes
        return
    size = StateStoreSize(stage, state_dir) if state_dir is not None else None
    if size is not None:
        REGISTRY.register(size)
    address = (settings.metrics_host, settings.metrics_port)
    try:
        server = ThreadingHTTPServer(address, _handler(probes))
    except OSError as error:
        if size is not None:
            REGISTRY.unregister(size)
        raise ConfigError(
            f"{stage}: cannot serve metrics on {address[0]}:{address[1]} ({error.strerror}): "
            "give each process its own NBO_METRICS_PORT"
        ) from error
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, args=(0.1,), name=f"{stage}-metrics", daemon=True
    )
    thread.start()
    host, port = server.server_address[:2]
    log.info("%s: metrics on http://%s:%s/metrics", stage, host, port)
    try:
        yield probes
    finally:
        server.shutdown()
        server.server_close()
        if size is not None:
            REGISTRY.unregister(size)
