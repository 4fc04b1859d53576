"""The local Kafka cluster of `make kafka` and the tests (`tools/kafka/cluster.py`)."""

from __future__ import annotations

import shutil
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
            [str(_jdk_tool("jcmd")), str(cluster.pids[0]), "VM.flags"],
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


def _jdk_tool(name: str) -> Path:
    """A JDK tool of the `java` on the PATH (beside it: the PATH may hold only `java`)."""
    java = shutil.which("java")
    assert java is not None, "java is not on the PATH"
    return Path(java).resolve().parent / name
