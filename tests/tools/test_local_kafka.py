"""The local Kafka cluster of `make kafka` and the tests (`tools/kafka/cluster.py`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tools.kafka import cluster as local_kafka

pytestmark = pytest.mark.real_kafka


def test_a_local_broker_runs_with_the_jvm_options_of_kafkas_own_start_scripts(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "kafka"
    cluster = local_kafka.start(nodes=1, directory=directory)
    try:
        # the flags the JVM runs with, as it reports them (a later option would have won)
        flags = subprocess.run(
            ["jcmd", str(cluster.pids[0]), "VM.flags"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.split()
    finally:
        local_kafka.stop(directory)
    assert "-XX:+UseG1GC" in flags
    assert "-XX:MaxGCPauseMillis=20" in flags
    assert "-XX:InitialHeapSize=1073741824" in flags and "-XX:MaxHeapSize=1073741824" in flags
    assert "-XX:InitiatingHeapOccupancyPercent=35" in flags
