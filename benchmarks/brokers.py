"""The brokers a crash benchmark runs on: a real Kafka (the configured or running one, else one
started here), or a fresh embedded broker."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from local_kafka import cluster as local_kafka
from pipeline.kafka.broker import TansuBroker, configured_address
from pipeline.settings import Settings


def kafka_at_hand() -> bool:
    """Whether a real Kafka is configured or running here, or can be started."""
    return (
        configured_address(Settings()) is not None
        or local_kafka.Cluster.load() is not None
        or local_kafka.available()
    )


@contextmanager
def kafka() -> Iterator[tuple[str, int | None]]:
    """A real Kafka: the configured or running one, else a local one started for the run."""
    address = configured_address(Settings())
    if address is None and (running := local_kafka.Cluster.load()) is not None:
        address = running.bootstrap
    if address is not None:
        yield address, None
        return
    directory = Path(tempfile.mkdtemp(prefix="nbo-chaos-kafka-"))
    cluster = local_kafka.start(nodes=1, directory=directory)
    try:
        yield cluster.bootstrap, None
    finally:
        local_kafka.stop(directory)


@contextmanager
def embedded() -> Iterator[tuple[str, int | None]]:
    with TansuBroker() as broker:
        assert broker.address is not None
        yield broker.address, broker.pid
