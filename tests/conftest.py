"""Shared fixtures: one embedded broker per test session, fresh topics per test."""

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

from pipeline.broker import EmbeddedBroker
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


@pytest.fixture(scope="session")
def broker() -> Iterator[str]:
    """The address of an embedded Tansu broker shared by the whole session."""
    with EmbeddedBroker(start_timeout=30) as embedded:
        assert embedded.address is not None
        yield embedded.address


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
