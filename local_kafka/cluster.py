"""A local Apache Kafka cluster in KRaft mode, from the broker's jars on Maven Central.

    python -m local_kafka.cluster start [--nodes 3]   # or: make kafka (KAFKA_NODES=3)
    python -m local_kafka.cluster stop                 # or: make kafka-stop
    python -m local_kafka.cluster address              # the bootstrap address, if one runs

The jars are fetched once, by Maven from `local_kafka/pom.xml`, into `~/.cache/nbo/kafka-<version>`.
Each node is a `kafka.Kafka` JVM that is both broker and controller, on loopback ports chosen
free at start; `.kafka/` (not in git) holds each node's properties, data and log, and
`cluster.json` with the address and the process ids that `stop` ends. With three nodes, topics
get replication factor 3 and `min.insync.replicas` 2, for the fault tests. A node runs with the
JVM options of Kafka's own start scripts and as many request threads as the machine has cores
for, since it shares them with the apps.

Needs Java 17+ and Maven on the PATH (`available()` says whether they are).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
POM = HERE / "pom.xml"
VERSION = "4.4.0"  # keep in step with pom.xml
CACHE = Path(os.environ.get("NBO_KAFKA_CACHE", Path.home() / ".cache" / "nbo" / f"kafka-{VERSION}"))
DEFAULT_DIR = REPO / ".kafka"
READY_TIMEOUT = 120.0
# Each node's JVM runs as Kafka's own start scripts run it (`kafka-server-start.sh`: a 1 GB heap;
# `kafka-run-class.sh`: G1 aiming at 20 ms pauses), which pauses the broker less often and for
# less long than Java's defaults (docs/benchmarks.md, "Client timing"). The storage tool needs
# none of it.
_BROKER_JVM = ("-Xms1g", "-Xmx1g", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
               "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
               "-XX:MaxInlineLevel=15", "-Djava.awt.headless=true")  # fmt: skip
_TOOL_JVM = ("-Xmx512m",)


@dataclass(frozen=True)
class NodeOptions:
    """How each node runs: its JVM options, broker properties beyond the cluster's own, and
    what to run in the child before the JVM starts (e.g. to tie its life to its parent's).
    Kafka's own start scripts' options by default, for `make kafka` and the tests."""

    jvm: tuple[str, ...] = _BROKER_JVM
    properties: tuple[str, ...] = ()
    preexec: Callable[[], None] | None = None


class ClusterError(RuntimeError):
    """The local cluster could not be fetched, started or reached."""


@dataclass(frozen=True)
class Cluster:
    bootstrap: str
    nodes: int
    pids: list[int]
    directory: str

    def save(self) -> None:
        (Path(self.directory) / "cluster.json").write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, directory: Path = DEFAULT_DIR) -> Cluster | None:
        """The cluster recorded in `directory`, if its processes are all alive."""
        try:
            cluster = cls(**json.loads((directory / "cluster.json").read_text()))
        except (OSError, ValueError, TypeError):
            return None
        return cluster if all(alive(pid) for pid in cluster.pids) else None


def java_version() -> int | None:
    """The feature version of the `java` on the PATH (17 for 17.0.15), or None if there is none."""
    if shutil.which("java") is None:
        return None
    try:
        shown = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    # `openjdk version "17.0.15" 2025-04-15`; Java 8 and older said "1.8.0_402"
    quoted = shown.stderr.split('"')
    if len(quoted) < 2:
        return None
    parts = quoted[1].split(".")
    feature = parts[1] if parts[0] == "1" and len(parts) > 1 else parts[0]
    return int(feature) if feature.isdigit() else None


def available() -> bool:
    """Java 17+ is here, and the jars are cached or Maven can fetch them."""
    version = java_version()
    jars = jars_ready() or shutil.which("mvn") is not None
    return version is not None and version >= 17 and jars


def jars_ready() -> bool:
    """Whether the broker's jars are in the cache already."""
    return (CACHE / "complete").exists()


def fetch_jars() -> Path:
    """The broker's jars, fetched once into the cache; returns the folder holding them."""
    lib = CACHE / "lib"
    if jars_ready():
        return lib
    if shutil.which("mvn") is None:
        raise ClusterError("Maven (mvn) is needed once to fetch the Kafka jars")
    lib.mkdir(parents=True, exist_ok=True)
    command = ["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
               f"-DoutputDirectory={lib}", "-DincludeScope=runtime"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise ClusterError(f"Maven could not fetch the Kafka jars:\n{done.stdout}{done.stderr}")
    (CACHE / "complete").write_text(VERSION)
    return lib


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def alive(pid: int) -> bool:
    """Whether a process `pid` exists (another user's counts); a child of ours that exited is
    reaped, not counted (a zombie would answer `kill(pid, 0)`)."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def broker_threads(cores: int) -> dict[str, int]:
    """The request threads of a broker that shares `cores` with the apps it serves: Kafka's
    defaults (3 network, 8 I/O, 10 background threads) are for a machine of its own, so on a
    smaller one each is cut to what the cores allow (the loop's p99 measured both ways:
    docs/benchmarks.md, "Client timing")."""
    return {
        "num.network.threads": max(1, min(3, cores // 2)),
        "num.io.threads": max(1, min(8, cores)),
        "background.threads": max(1, min(10, cores)),
    }


def _properties(
    node: int,
    nodes: int,
    ports: dict[int, tuple[int, int]],
    data: Path,
    threads: dict[str, int],
    extra: tuple[str, ...] = (),
) -> str:
    broker, controller = ports[node]
    voters = ",".join(f"{n}@127.0.0.1:{ports[n][1]}" for n in sorted(ports))
    replicas = min(3, nodes)
    in_sync = 2 if nodes >= 3 else 1
    return "\n".join(
        [
            "process.roles=broker,controller",
            f"node.id={node}",
            f"controller.quorum.voters={voters}",
            f"listeners=PLAINTEXT://127.0.0.1:{broker},CONTROLLER://127.0.0.1:{controller}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{broker}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={data}",
            f"default.replication.factor={replicas}",
            f"min.insync.replicas={in_sync}",
            f"offsets.topic.replication.factor={replicas}",
            "offsets.topic.num.partitions=10",  # Kafka's 50 slow a laptop's start for nothing
            f"transaction.state.log.replication.factor={replicas}",
            f"transaction.state.log.min.isr={in_sync}",
            "transaction.state.log.num.partitions=10",
            f"share.coordinator.state.topic.replication.factor={replicas}",
            f"share.coordinator.state.topic.min.isr={in_sync}",
            "group.initial.rebalance.delay.ms=0",  # a test's consumer joins at once
            "auto.create.topics.enable=false",  # nbo creates its topics; a typo must fail
            *(f"{name}={count}" for name, count in threads.items()),
            *extra,
            "",
        ]
    )


_LOG4J = """status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.file.ref = file
"""


def _java(lib: Path, log4j: Path, options: tuple[str, ...], *args: str) -> list[str]:
    return ["java", *options, f"-Dlog4j2.configurationFile={log4j}",
            "-cp", f"{lib}/*", *args]  # fmt: skip


def start(
    nodes: int = 1,
    directory: Path = DEFAULT_DIR,
    options: NodeOptions = NodeOptions(),
    timeout: float = READY_TIMEOUT,
) -> Cluster:
    """Start a fresh cluster of `nodes` nodes; return once every broker answers."""
    running = Cluster.load(directory)
    if running is not None:
        if running.nodes == nodes:
            return running
        stop(directory)
    lib = fetch_jars()
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    ports = {node: (free_port(), free_port()) for node in range(1, nodes + 1)}
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    threads = broker_threads(os.cpu_count() or 1)
    pids = []
    for node in ports:
        home = directory / f"node-{node}"
        home.mkdir()
        properties = home / "server.properties"
        properties.write_text(
            _properties(node, nodes, ports, home / "data", threads, options.properties)
        )
        log4j = home / "log4j2.properties"
        log4j.write_text(_LOG4J.format(log=home / "server.log", level="INFO"))
        # `--cluster-id=`: a random id may start with "-", which argparse takes for an option
        storage_format = ["kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}",
                          "-c", str(properties)]  # fmt: skip
        formatted = subprocess.run(
            _java(lib, log4j, _TOOL_JVM, *storage_format), capture_output=True, text=True
        )
        if formatted.returncode != 0:
            raise ClusterError(f"node {node}: storage format failed:\n{formatted.stderr}")
        with open(home / "stdout.log", "wb") as out:
            process = subprocess.Popen(
                _java(lib, log4j, options.jvm, "kafka.Kafka", str(properties)),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=options.preexec,
                # Own session: outlives `make kafka` (`stop` ends it), and a Ctrl-C meant for
                # the foreground app that started it does not stop it first.
                start_new_session=True,
            )
        pids.append(process.pid)
    bootstrap = ",".join(f"127.0.0.1:{broker}" for broker, _ in ports.values())
    cluster = Cluster(bootstrap, nodes, pids, str(directory))
    cluster.save()
    try:
        wait_until_ready(cluster, timeout)
    except ClusterError as error:
        logs = "\n".join(
            _log_tail(directory / f"node-{node}" / name)
            for node in ports
            for name in ("stdout.log", "server.log")
        )
        stop(directory)  # deletes the logs: their last lines travel in the error
        raise ClusterError(f"{error}; last lines of the log:\n{logs}") from error
    return cluster


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def wait_until_ready(cluster: Cluster, timeout: float = READY_TIMEOUT) -> None:
    """Bounded wait until every broker is in the cluster's metadata."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": cluster.bootstrap, "log_level": 0})
    deadline = time.monotonic() + timeout
    while True:
        dead = [pid for pid in cluster.pids if not alive(pid)]
        if dead:
            raise ClusterError(f"Kafka node process(es) {dead} exited; see {cluster.directory}")
        try:
            brokers = admin.list_topics(timeout=5).brokers
            if len(brokers) == cluster.nodes:
                return
        except Exception:  # not answering yet
            pass
        if time.monotonic() > deadline:
            raise ClusterError(f"the Kafka cluster did not answer within {timeout:.0f} s")
        time.sleep(0.5)


def stop_node(pid: int, sig: int = signal.SIGTERM, timeout: float = 60.0) -> None:
    """Stop one node (SIGKILL for a crash); wait until its process is gone."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):  # reap it if it is our child
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)


def stop(directory: Path = DEFAULT_DIR, sig: int = signal.SIGTERM) -> int:
    """Stop every node recorded in `directory` and delete its data; return how many ran.

    SIGKILL suits a throwaway cluster: its data goes anyway, and a node left without its
    controller quorum (the last of three) waits out the whole timeout on a SIGTERM."""
    try:
        recorded = json.loads((directory / "cluster.json").read_text())
    except (OSError, ValueError):
        return 0
    pids = [pid for pid in recorded.get("pids", []) if alive(pid)]
    for pid in pids:
        stop_node(pid, sig)
    shutil.rmtree(directory, ignore_errors=True)
    return len(pids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop", "address"])
    parser.add_argument("--nodes", type=int, default=int(os.environ.get("KAFKA_NODES", "1")))
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    args = parser.parse_args()
    try:
        if args.action == "start":
            started = time.monotonic()
            cluster = start(args.nodes, args.dir)
            print(f"Kafka {VERSION} ready ({cluster.nodes} node(s), "
                  f"{time.monotonic() - started:.0f} s): {cluster.bootstrap}")  # fmt: skip
            print(f"export NBO_BROKER_ADDRESS={cluster.bootstrap}")
        elif args.action == "stop":
            print(f"stopped {stop(args.dir)} Kafka node(s)")
        else:
            running = Cluster.load(args.dir)
            if running is None:
                sys.exit("no local Kafka cluster runs (make kafka)")
            print(running.bootstrap)
    except ClusterError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
