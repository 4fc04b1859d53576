"""The local Kafka cluster of `make kafka` and the tests (`local_kafka/cluster.py`)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from local_kafka import cluster as local_kafka


@pytest.fixture(scope="module")
def one_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local_kafka.Cluster]:
    directory = tmp_path_factory.mktemp("kafka")
    cluster = local_kafka.start(nodes=1, directory=directory)
    try:
        yield cluster
    finally:
        local_kafka.stop(directory)


@pytest.mark.real_kafka
def test_a_local_broker_runs_with_the_jvm_options_of_kafkas_own_start_scripts(
    one_node: local_kafka.Cluster,
) -> None:
    # the flags the JVM runs with, as it reports them (a later option would have won)
    flags = subprocess.run(
        [str(_jdk_tool("jcmd")), str(one_node.pids[0]), "VM.flags"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    assert "-XX:+UseG1GC" in flags
    assert "-XX:MaxGCPauseMillis=20" in flags
    assert "-XX:InitialHeapSize=1073741824" in flags and "-XX:MaxHeapSize=1073741824" in flags
    assert "-XX:InitiatingHeapOccupancyPercent=35" in flags


@pytest.mark.real_kafka
def test_a_local_broker_runs_as_many_request_threads_as_the_machine_has_cores_for(
    one_node: local_kafka.Cluster,
) -> None:
    admin = AdminClient({"bootstrap.servers": one_node.bootstrap})
    node = ConfigResource(ConfigResource.Type.BROKER, "1")
    configs = admin.describe_configs([node])[node].result(timeout=30)
    expected = local_kafka.broker_threads(os.cpu_count() or 1)  # 1, 2 and 2 on 2 cores
    assert {name: int(configs[name].value) for name in expected} == expected


@pytest.mark.parametrize(
    ("cores", "network", "io", "background"),
    [(1, 1, 1, 1), (2, 1, 2, 2), (4, 2, 4, 4), (64, 3, 8, 10)],  # 64: Kafka's own defaults
)
def test_a_broker_sharing_the_machine_gets_fewer_request_threads_than_kafkas_defaults(
    cores: int, network: int, io: int, background: int
) -> None:
    assert local_kafka.broker_threads(cores) == {
        "num.network.threads": network,
        "num.io.threads": io,
        "background.threads": background,
    }


def _jdk_tool(name: str) -> Path:
    """A JDK tool of the `java` on the PATH (beside it: the PATH may hold only `java`)."""
    java = shutil.which("java")
    assert java is not None, "java is not on the PATH"
    return Path(java).resolve().parent / name
