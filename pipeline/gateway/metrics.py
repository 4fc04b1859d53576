"""The gateway's Prometheus metrics, served on `/metrics` in the text format.

A registry of its own (not the process-wide default), so that two gateways in one test process
do not share counts.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

# Request-reply waits for a decision: the buckets reach the longest wait a request may ask for
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # CPU, resident memory, start time
        self.requests = Counter(
            "nbo_gateway_requests", "HTTP requests answered, by route and status",
            ["route", "status"], registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "nbo_gateway_request_seconds", "time to answer, by route",
            ["route"], buckets=_LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.produced = Counter(
            "nbo_gateway_records_produced", "records acknowledged by Kafka, by topic",
            ["topic"], registry=self.registry,
        )  # fmt: skip
        self.unreadable = Counter(
            "nbo_gateway_unreadable_decisions",
            "records on next_best_offers the gateway could not read",
            registry=self.registry,
        )

    def follow(self, name: str, description: str, read: Callable[[], float]) -> None:
        """A gauge read when scraped (open streams, waiting requests, …)."""
        Gauge(name, description, registry=self.registry).set_function(read)
