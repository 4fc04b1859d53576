"""Running μ-products as their own processes, as they would run in production.

Used by `nbo demo`, the steady loop, the benchmarks and the tests. A child gets the parent's
settings through `NBO_*` variables and is stopped with SIGTERM (the signal Kubernetes and
systemd send), so it commits its offsets and flushes its state before it exits.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pipeline.settings import Settings

REPO = Path(__file__).resolve().parents[2]
_STOP_TIMEOUT = 30.0


def environment(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process exactly `settings`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("NBO_")}
    for name, value in settings.model_dump(exclude_none=True).items():
        secret = getattr(value, "get_secret_value", None)
        if isinstance(value, list | dict):  # pydantic-settings reads these as JSON
            env[f"NBO_{name.upper()}"] = json.dumps(value)
        else:
            env[f"NBO_{name.upper()}"] = str(secret() if secret else value)
    return env


def spawn(
    settings: Settings, args: list[str], log: Path, pass_fds: tuple[int, ...] = ()
) -> subprocess.Popen[bytes]:
    """Start `python -m <args>` with `settings`; its output goes to `log`; `pass_fds`: open
    files it inherits (a listening socket)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", *args],
            cwd=REPO,
            env=environment(settings),
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            pass_fds=pass_fds,
        )


def stop(process: subprocess.Popen[bytes], timeout: float = _STOP_TIMEOUT) -> int:
    """SIGTERM, then SIGKILL if it does not exit within `timeout`; return the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def resident_mb(pid: int, peak: bool = False) -> float:
    """A live process's resident memory now, or its peak so far, in MB (from Linux /proc)."""
    field = "VmHWM:" if peak else "VmRSS:"
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    raise ValueError(f"process {pid} reports no {field}")


@contextmanager
def running(settings: Settings, args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    process = spawn(settings, args, log)
    try:
        yield process
    finally:
        stop(process)


@dataclass(frozen=True)
class Exit:
    """A supervised process that ended: which, how, and whether it was killed on purpose."""

    name: str
    code: int
    killed: bool


class Supervisor:
    """Keeps named μ-product processes running as systemd or Kubernetes would: one that exits is
    started again at once, with the same settings (so the same instance slot). `kill` SIGKILLs
    one and restarts it, as a crash would. Driven by its owner's loop (`check`), or, for an
    owner that blocks, by a thread of its own while `running()`.
    """

    def __init__(self, settings: Settings, apps: dict[str, list[str]], logs: Path) -> None:
        self._settings = settings
        self._apps = apps
        self._logs = logs
        self._starts: dict[str, int] = dict.fromkeys(apps, 0)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.exits: list[Exit] = []

    def start(self) -> Supervisor:
        for name in self._apps:
            self._spawn(name)
        return self

    def _spawn(self, name: str) -> None:
        log = self._logs / f"{name}-{self._starts[name]}.log"
        self._starts[name] += 1
        self.processes[name] = spawn(self._settings, self._apps[name], log)

    def check(self) -> list[Exit]:
        """Restart every process that has exited on its own; returns those exits."""
        ended = [
            Exit(name, process.returncode, killed=False)
            for name, process in self.processes.items()
            if process.poll() is not None
        ]
        for ending in ended:
            self.exits.append(ending)
            self._spawn(ending.name)
        return ended

    def kill(self, name: str) -> None:
        """SIGKILL `name` (no shutdown hook runs, nothing is flushed) and restart it at once."""
        process = self.processes[name]
        process.kill()
        process.wait()
        self.exits.append(Exit(name, process.returncode, killed=True))
        self._spawn(name)

    def crashes(self) -> list[Exit]:
        """The exits nobody asked for."""
        return [ending for ending in self.exits if not ending.killed]

    @contextmanager
    def running(self, every: float = 0.2) -> Iterator[Supervisor]:
        """Started, and checked every `every` seconds from a thread of its own until the block
        ends; then every process is stopped."""
        done = threading.Event()

        def keep_running() -> None:
            while not done.wait(every):
                self.check()

        self.start()
        watcher = threading.Thread(target=keep_running, name="supervisor", daemon=True)
        watcher.start()
        try:
            yield self
        finally:
            done.set()
            watcher.join()
            self.stop()

    def stop(self, names: list[str] | None = None) -> dict[str, int]:
        """SIGTERM the named processes, all by default (SIGKILL after the stop timeout); their
        exit codes. A stopped process is not restarted."""
        stopped = {}
        for name in list(self.processes) if names is None else names:
            process = self.processes.pop(name, None)
            if process is not None:
                stopped[name] = stop(process)
        return stopped
