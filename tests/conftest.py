"""Shared fixtures: one broker per test session (real Kafka when there is one), fresh topics."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import authlib.deprecate  # noqa: F401  (see below)
import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from local_kafka import cluster as local_kafka
from pipeline.kafka.broker import TansuBroker
from pipeline.settings import Settings

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample"

hypothesis_settings.register_profile(
    "nbo", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.load_profile("nbo")

# authlib (under MLflow) sets its deprecation warnings to "always" when first imported, ahead of
# pytest's filters if that happens inside a test; imported here, the filters in pyproject.toml win.

_prefixes = itertools.count()


def _broker_kind() -> str:
    """Which broker the session's Kafka tests run on: `kafka` or `embedded`.

    NBO_TEST_BROKER chooses; unset, a real Kafka when one is running (`make kafka`) or can be
    started here (Java and Maven present), else the embedded one. NBO_REQUIRE_KAFKA=1 (CI) makes
    a missing real Kafka an error instead.
    """
    chosen = os.environ.get("NBO_TEST_BROKER", "")
    if chosen in ("kafka", "embedded"):
        return chosen
    if local_kafka.Cluster.load() is not None or local_kafka.available():
        return "kafka"
    if os.environ.get("NBO_REQUIRE_KAFKA") == "1":
        raise pytest.UsageError(
            "NBO_REQUIRE_KAFKA=1 but there is no real Kafka: run `make kafka` (needs Java 17 and "
            "Maven)"
        )
    return "embedded"


BROKER_KIND = _broker_kind()


def pytest_report_header() -> str:
    if BROKER_KIND == "kafka":
        return f"broker: Apache Kafka {local_kafka.VERSION} (local_kafka), real-Kafka tests run"
    return "broker: embedded Tansu; tests marked real_kafka are skipped"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    other = "embedded_broker" if BROKER_KIND == "kafka" else "real_kafka"
    skip = pytest.mark.skip(reason=f"{other} test; this session runs on {BROKER_KIND}")
    for item in items:
        if other in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The address of the broker shared by the whole session (see `_broker_kind`)."""
    if BROKER_KIND == "embedded":
        with TansuBroker(start_timeout=30) as embedded:
            assert embedded.address is not None
            yield embedded.address
        return
    running = local_kafka.Cluster.load()
    if running is not None:  # `make kafka` started it; `make kafka-stop` ends it
        yield running.bootstrap
        return
    directory = tmp_path_factory.mktemp("kafka")
    cluster = local_kafka.start(nodes=1, directory=directory)
    try:
        yield cluster.bootstrap
    finally:
        local_kafka.stop(directory)


@pytest.fixture
def make_settings(broker: str, tmp_path: Path) -> Callable[..., Settings]:
    """Settings on the session broker with a topic prefix no other test uses."""
    prefix = f"t{os.getpid()}-{next(_prefixes)}"

    def _make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "broker_address": broker,
            "topic_prefix": prefix,
            "state_dir": tmp_path / "state",
            "mlflow_tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "mlflow_artifacts_dir": tmp_path / "artifacts",
        }
        values.update(overrides)
        return Settings(**values)

    return _make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def sample_dir() -> Path:
    return SAMPLE
