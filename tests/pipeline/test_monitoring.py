"""A μ-product's own port: its metrics as Prometheus reads them, and the probes' answers. The
alert rules committed beside the docs are checked by Prometheus' own tool (and evaluated on a
running loop in `test_monitoring_loop`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from local_kafka.cluster import free_port
from pipeline.contracts.schemas import DeadLetterKind, JourneyEvent
from pipeline.errors import ConfigError
from pipeline.kafka.dead_letters import Origin, parse
from pipeline.kafka.progress import PartitionLag
from pipeline.monitoring import metrics
from pipeline.monitoring.server import Probes, serving
from pipeline.settings import Settings

MONITORING = Path(__file__).resolve().parents[2] / "docs" / "monitoring"


def scrape(address: str) -> dict[str, float]:
    """Every sample at `address`/metrics, by name and labels as Prometheus writes them."""
    text = httpx.get(f"{address}/metrics", timeout=10).text
    return {
        sample.name + json.dumps(sample.labels, sort_keys=True): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _monitor(stalled: list[PartitionLag] | None = None, looked_ago: float = 0.0) -> SimpleNamespace:
    """Stands in for a progress monitor: what it found at its last look, and when."""
    return SimpleNamespace(stalled=stalled or [], last_look=time.monotonic() - looked_ago)


@pytest.fixture
def served(settings: Settings, tmp_path: Path) -> Iterator[tuple[str, Probes]]:
    port = free_port()
    state = tmp_path / "state"
    (state / "store").mkdir(parents=True)
    (state / "store" / "000001.sst").write_bytes(b"x" * 1234)
    with serving(settings.model_copy(update={"metrics_port": port}), "ranker", state) as probes:
        yield f"http://127.0.0.1:{port}", probes


def test_a_process_serves_its_metrics_in_the_prometheus_text_format(
    served: tuple[str, Probes],
) -> None:
    address, _probes = served
    before = scrape(address)
    metrics.LABELS_TOLD.labels("accept").inc(2)
    after = scrape(address)
    told = 'nbo_labels_told_total{"outcome": "accept"}'
    assert after[told] - before.get(told, 0.0) == 2
    assert after['nbo_state_store_bytes{"stage": "ranker"}'] == 1234
    assert after["process_resident_memory_bytes{}"] > 0  # the client library's process metrics
    assert httpx.get(f"{address}/nothing", timeout=10).status_code == 404


def test_the_probes_say_whether_the_stage_is_alive_and_ready(served: tuple[str, Probes]) -> None:
    address, probes = served

    def answer(path: str) -> tuple[int, str]:
        response = httpx.get(f"{address}{path}", timeout=10)
        return response.status_code, response.text.strip()

    assert answer("/healthz") == (200, "ranker alive")
    assert answer("/readyz") == (503, "ranker is not processing yet (loading, or stopped)")
    probes.watch(_monitor())  # type: ignore[arg-type]
    assert answer("/readyz") == (200, "ranker ready")
    probes.watch(_monitor(looked_ago=600))  # type: ignore[arg-type]
    assert answer("/readyz") == (503, "ranker has not read its group's offsets for 600 s")
    probes.watch(_monitor([PartitionLag("valid_offers", 2, 10, 25, 42.0)]))  # type: ignore[arg-type]
    assert answer("/healthz") == (503, "ranker stalled on valid_offers[2]")
    assert answer("/readyz") == (503, "ranker stalled on valid_offers[2]")


def test_a_port_taken_already_is_a_clear_error(
    served: tuple[str, Probes], settings: Settings
) -> None:
    address, _probes = served
    taken = settings.model_copy(update={"metrics_port": int(address.rsplit(":", 1)[1])})
    with (
        pytest.raises(
            ConfigError,
            match=r"learner: cannot serve metrics on 127\.0\.0\.1:\d+ "
            r"\(Address already in use\): give each process its own NBO_METRICS_PORT",
        ),
        serving(taken, "learner"),
    ):
        pass


def test_nothing_is_served_without_a_metrics_port(settings: Settings) -> None:
    assert settings.metrics_port is None
    with serving(settings, "learner") as probes:
        assert probes.alive() == (True, "learner alive")
        assert not any(t.name == "learner-metrics" for t in threading.enumerate())


def test_each_refused_record_is_counted_by_the_class_of_its_reason() -> None:
    topics, schemas = {"nbo-events": "events"}, {"events": JourneyEvent}
    origin = Origin("nbo-events", 0, 7, "C1")
    invalid = parse(b"{not json", "C1", topics, schemas, "valid-offers", origin)
    assert invalid.dead is not None and invalid.dead["kind"] == DeadLetterKind.INVALID_RECORD
    event = {"event_id": "e1", "customer_id": "C2", "event_type": "app_login",
             "timestamp": "2026-03-02T09:00:00Z", "channel": "web"}  # fmt: skip
    other = parse(json.dumps(event).encode(), "C1", topics, schemas, "valid-offers", origin)
    assert other.dead is not None and other.dead["kind"] == DeadLetterKind.KEY_MISMATCH
    assert "differs from customer_id 'C2'" in other.dead["reason"]


def _promtool() -> str | None:
    found = shutil.which("promtool")
    if found is None and os.environ.get("CI") == "true":
        pytest.fail("promtool is missing: .ci/run installs Debian's prometheus package")
    return found


def test_the_alert_rules_and_the_example_configuration_pass_promtool() -> None:
    promtool = _promtool()
    if promtool is None:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    checked = subprocess.run(
        [promtool, "check", "config", str(MONITORING / "prometheus.yml")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 7 rules found" in checked.stdout
