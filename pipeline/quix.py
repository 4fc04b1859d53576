"""One place that turns Settings into a Quix Streams Application, for every μ-product."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quixstreams import Application
from quixstreams.kafka.configuration import ConnectionConfig

from pipeline.broker import wait_until_ready
from pipeline.settings import Settings


def consumer_group(settings: Settings, stage: str) -> str:
    return f"{settings.topic_prefix}.{stage}" if settings.topic_prefix else stage


def state_dir(settings: Settings, bootstrap: str, stage: str) -> Path:
    """Local state of `stage`, kept per Kafka cluster.

    State restored from a changelog is only valid for the cluster that holds the changelog: an
    embedded broker forgets its topics when it stops (and gets a new cluster id when it starts),
    so its old local state must not be reused.
    """
    cluster = wait_until_ready(settings.kafka_config(bootstrap), settings.broker_start_timeout)
    return settings.state_dir / cluster / stage


def make_application(settings: Settings, bootstrap: str, stage: str, **extra: Any) -> Application:
    """A Quix app for `stage` with nbo's broker, security, group, state and timing settings."""
    return Application(
        broker_address=ConnectionConfig.from_librdkafka_dict(settings.kafka_config(bootstrap)),
        consumer_group=consumer_group(settings, stage),
        auto_offset_reset="earliest",
        commit_interval=settings.commit_interval,
        state_dir=state_dir(settings, bootstrap, stage),
        consumer_extra_config={"session.timeout.ms": settings.session_timeout_ms},
        loglevel="WARNING",
        **extra,
    )
