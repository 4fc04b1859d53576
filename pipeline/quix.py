"""One place that turns Settings into a Quix Streams Application, for every μ-product."""

from __future__ import annotations

from typing import Any

from quixstreams import Application
from quixstreams.kafka.configuration import ConnectionConfig

from pipeline.settings import Settings


def consumer_group(settings: Settings, stage: str) -> str:
    return f"{settings.topic_prefix}.{stage}" if settings.topic_prefix else stage


def make_application(settings: Settings, bootstrap: str, stage: str, **extra: Any) -> Application:
    """A Quix app for `stage` with nbo's broker, security, group, state and timing settings."""
    return Application(
        broker_address=ConnectionConfig.from_librdkafka_dict(settings.kafka_config(bootstrap)),
        consumer_group=consumer_group(settings, stage),
        auto_offset_reset="earliest",
        commit_interval=settings.commit_interval,
        state_dir=settings.state_dir / stage,
        consumer_extra_config={"session.timeout.ms": settings.session_timeout_ms},
        loglevel="WARNING",
        **extra,
    )
