"""Running μ-products as their own processes, as they would run in production.

Used by `nbo demo`, the benchmarks and the tests. A child gets the parent's settings through
`NBO_*` variables and is stopped with SIGTERM (the signal Kubernetes and systemd send), so it
commits its offsets and flushes its state before it exits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.settings import Settings

REPO = Path(__file__).resolve().parents[2]
_STOP_TIMEOUT = 30.0


def environment(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process exactly `settings`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("NBO_")}
    for name, value in settings.model_dump(exclude_none=True).items():
        secret = getattr(value, "get_secret_value", None)
        env[f"NBO_{name.upper()}"] = str(secret() if secret else value)
    return env


def spawn(settings: Settings, args: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start `python -m <args>` with `settings`; its output goes to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", *args],
            cwd=REPO,
            env=environment(settings),
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
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
