"""Reading a μ-product's metrics as Prometheus does, for `nbo status --metrics URL`: the same
numbers the dashboard shows, from the same endpoint, without a Prometheus.

>>> text = '''# TYPE nbo_decisions_total counter
... nbo_decisions_total{phase="primary",policy="greedy",model_version="3"} 10.0
... nbo_decisions_total{phase="none",policy="greedy",model_version="3"} 2.0
... # TYPE nbo_stalled gauge
... nbo_stalled{stage="ranker"} 0.0
... '''
>>> before = Samples.parse(text)
>>> after = Samples.parse(text.replace("10.0", "40.0"))
>>> after.total("nbo_decisions_total"), after.rate(before, "nbo_decisions_total", seconds=3)
(42.0, 10.0)
>>> after.stage()
'ranker'
"""

from __future__ import annotations

import time
import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

_TIMEOUT = 10.0


@dataclass(frozen=True)
class Samples:
    """One scrape: each sample's value by metric name, with its labels."""

    values: dict[str, list[tuple[dict[str, str], float]]]
    at: float  # when it was read (monotonic seconds)

    @classmethod
    def parse(cls, text: str, at: float = 0.0) -> Samples:
        values: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                values.setdefault(sample.name, []).append((sample.labels, sample.value))
        return cls(values, at)

    @classmethod
    def scrape(cls, url: str) -> Samples:
        """The metrics at `url` (its `/metrics`, if it names no path)."""
        if not url.rstrip("/").endswith("/metrics"):
            url = url.rstrip("/") + "/metrics"
        with urllib.request.urlopen(url, timeout=_TIMEOUT) as answer:
            return cls.parse(answer.read().decode(), time.monotonic())

    def total(self, name: str, **labels: str) -> float:
        """The sum of `name`'s samples that have `labels`."""
        return sum(
            value for found, value in self.values.get(name, []) if labels.items() <= found.items()
        )

    def rate(self, before: Samples, name: str, seconds: float | None = None) -> float:
        """How fast `name` grew per second since `before`."""
        span = seconds if seconds is not None else self.at - before.at
        return (self.total(name) - before.total(name)) / span if span > 0 else 0.0

    def stage(self) -> str:
        """The μ-product that served these metrics (the gateway has a name of its own)."""
        for name in ("nbo_stalled", "nbo_records_in_total", "nbo_stall_timeout_seconds"):
            for labels, _value in self.values.get(name, []):
                if "stage" in labels:
                    return labels["stage"]
        return "gateway" if "nbo_gateway_requests_total" in self.values else "?"
