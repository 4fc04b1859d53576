"""Helpers for tests that run μ-products as real processes against the session broker."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpx

from local_kafka.cluster import free_port
from pipeline.kafka import processes
from pipeline.kafka.clients import KafkaRecord, produce, read_at_least
from pipeline.settings import Settings


@contextmanager
def running(settings: Settings, *command: str) -> Iterator[subprocess.Popen[bytes]]:
    """Run `nbo COMMAND` as its own process for the duration of the block."""
    log = settings.state_dir.parent / f"{'-'.join(command)}.log"
    with processes.running(settings, ["pipeline", *command], log) as process:
        yield process


def send(settings: Settings, logical_topic: str, records: Sequence[tuple[str, Any]]) -> None:
    """Produce `(key, value)` pairs; a value that is not bytes is sent as JSON."""
    items = [
        (key, value if isinstance(value, bytes) else json.dumps(value).encode())
        for key, value in records
    ]
    produce(settings, settings.broker_address or "", settings.topic_name(logical_topic), items)


def outputs(settings: Settings, logical_topic: str, count: int, timeout: float = 60) -> list[Any]:
    """The first `count` JSON values on `logical_topic`, waiting for them up to `timeout`."""
    records: list[KafkaRecord] = read_at_least(
        settings, settings.broker_address or "", settings.topic_name(logical_topic), count, timeout
    )
    return [record.json() for record in records]


def output_for(settings: Settings, logical_topic: str, count: int, event_id: str) -> Any:
    """The output for `event_id`, once `count` outputs are on the topic. Records of different
    partitions arrive in no fixed order, so the last one read is not necessarily the newest."""
    return next(v for v in outputs(settings, logical_topic, count) if v["event_id"] == event_id)


@contextmanager
def gateway(
    settings: Settings, timeout: float = 60
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`nbo run gateway` on a free port; its address once it is ready (`/readyz`)."""
    port = free_port()  # not the settings' own: two gateways of two tests would share it
    served = settings.model_copy(update={"gateway_port": port})
    with running(served, "run", "gateway") as process:
        address = f"http://127.0.0.1:{port}"
        await_ready(address, process, timeout)
        yield address, process


def await_ready(address: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Until the gateway at `address` says it is ready; fails at once if it exits."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise AssertionError(f"the gateway exited with code {process.returncode}")
        try:
            if httpx.get(f"{address}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet
        if time.monotonic() > deadline:
            raise AssertionError(f"the gateway at {address} not ready within {timeout:g} s")
        time.sleep(0.1)  # between probes; the wait is bounded by `timeout`
