from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from local_kafka import cluster as local_kafka
from pipeline.errors import BrokerError
from pipeline.kafka.broker import (
    EMBEDDED_CLUSTER_PREFIX,
    EmbeddedTansuWarning,
    LocalKafkaBroker,
    TansuBroker,
    broker_address,
    cluster_id,
    embedded_broker,
    running_embedded_address,
    wait_until_ready,
)
from pipeline.settings import Settings
from tests.factories import eventually

REPO = Path(__file__).resolve().parents[2]
needs_java = pytest.mark.skipif(
    not local_kafka.available(), reason="the embedded Kafka needs Java 17+ and its jars or Maven"
)
ENGINES = [pytest.param("tansu"), pytest.param("kafka", marks=needs_java)]


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("engine", ENGINES)
def test_embedded_broker_answers_metadata_and_stops(engine: str) -> None:
    with embedded_broker(Settings(embedded_broker=engine)) as broker:
        assert broker.engine == engine
        assert broker.address is not None and broker.address.startswith("127.0.0.1:")
        pid = broker.pid
        assert pid is not None
        wait_until_ready({"bootstrap.servers": broker.address}, timeout=5)
    assert _gone(pid)


@needs_java
def test_the_embedded_kafka_is_a_kafka_whose_data_goes_when_it_stops() -> None:
    settings = Settings(embedded_broker="kafka")
    with embedded_broker(settings) as broker:
        assert isinstance(broker, LocalKafkaBroker)
        assert broker.address is not None
        # a real Kafka's id: nbo gives it Kafka's timing, static members and changelogs
        assert not cluster_id(settings, broker.address).startswith(EMBEDDED_CLUSTER_PREFIX)
        assert (broker.directory / "node-1" / "data").is_dir()
        assert "deleted when it stops" in broker.keeps_topics
    assert not broker.directory.exists()


@needs_java
def test_a_failed_embedded_kafka_says_why_and_leaves_nothing_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pipeline.kafka import broker as broker_mod

    monkeypatch.setattr(broker_mod, "_LOCAL_KAFKA_JVM", ("-XX:+NoSuchOption",))
    broker = LocalKafkaBroker()
    with pytest.raises(BrokerError, match=r"did not start(.|\n)*NoSuchOption"):
        broker.start()
    assert not broker.directory.exists()


@pytest.mark.parametrize(
    ("java_says", "why"),
    [
        (None, "no java on the PATH"),
        ('openjdk version "11.0.2" 2019-01-15', "java 11, not 17"),
        ('java version "1.8.0_402"', "java 8, not 17"),
    ],
)
def test_auto_falls_back_to_tansu_without_java_17_and_says_why(
    java_says: str | None, why: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if java_says is not None:
        java = tmp_path / "java"
        java.write_text(f"#!/bin/sh\necho '{java_says}' >&2\n")
        java.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.warns(EmbeddedTansuWarning, match=f"{why}.*install Java 17"):
        broker = embedded_broker(Settings(embedded_broker="auto"))
    assert isinstance(broker, TansuBroker)


@needs_java
def test_auto_is_kafka_where_java_is() -> None:
    assert isinstance(embedded_broker(Settings(embedded_broker="auto")), LocalKafkaBroker)
    assert isinstance(embedded_broker(Settings(embedded_broker="tansu")), TansuBroker)


@pytest.mark.parametrize("engine", ENGINES)
def test_broker_dies_with_a_parent_killed_by_sigkill(engine: str) -> None:
    child_code = (
        "import sys; from pipeline.kafka.broker import embedded_broker\n"
        "from pipeline.settings import Settings\n"
        f"b = embedded_broker(Settings(embedded_broker={engine!r})); b.start()\n"
        "print(b.pid, flush=True); sys.stdin.read()\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", child_code],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        broker_pid = int(parent.stdout.readline())
        assert not _gone(broker_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        eventually(lambda: _gone(broker_pid), within=30, what="the orphaned broker to exit")
    finally:
        parent.kill()


def test_failed_start_reports_exit_and_log_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "tansu"
    fake.write_text("#!/bin/sh\necho 'listener: address already in use' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CALF_TANSU_BIN", str(fake))
    with pytest.raises(BrokerError, match=r"exited with code 3(.|\n)*address already in use"):
        TansuBroker(start_timeout=10).start()


def test_unreachable_configured_broker_fails_after_bounded_wait() -> None:
    settings = Settings(broker_address="127.0.0.1:1", broker_start_timeout=1.0)
    started = time.monotonic()
    with (
        pytest.raises(BrokerError, match="did not answer"),
        broker_address(settings, start_embedded=True),
    ):
        pass
    assert time.monotonic() - started < 10


def test_no_broker_and_no_embedded_allowed_says_what_to_do(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    with (
        pytest.raises(BrokerError, match="NBO_BROKER_ADDRESS"),
        broker_address(settings, start_embedded=False),
    ):
        pass


@pytest.mark.parametrize("engine", ENGINES)
def test_nbo_broker_command_registers_itself_and_stops_on_sigterm(
    engine: str, tmp_path: Path
) -> None:
    env = {**os.environ, "NBO_STATE_DIR": str(tmp_path), "NBO_EMBEDDED_BROKER": engine}
    env.pop("NBO_BROKER_ADDRESS", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "broker"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        assert "broker ready" in first_line
        registry = json.loads((tmp_path / "broker.json").read_text())
        assert registry["address"] in first_line
        assert running_embedded_address(Settings(state_dir=tmp_path)) == registry["address"]
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
        assert _gone(registry["pid"])
        assert not (tmp_path / "broker.json").exists()
    finally:
        process.kill()
