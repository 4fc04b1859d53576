"""`nbo ui`: the MLflow UI on nbo's model store, announced only once its tracking API answers.

MLflow's server answers `/health` before its workers can serve the API (a first worker may even
die and be restarted while the store is opened), so readiness is a real API call: looking up the
`nbo-ranker` experiment, with a per-request timeout that fits a slow, busy machine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from pipeline.errors import UiNotReady

EXPERIMENT = "nbo-ranker"
REQUEST_TIMEOUT = 15.0  # one API call on a loaded 2-core machine; the first one opens the store
_POLL_PAUSE = 0.25


def server_command(
    tracking_uri: str, artifacts_dir: Path, host: str, port: int, workers: int
) -> list[str]:
    return [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", tracking_uri,
        "--default-artifact-root", artifacts_dir.resolve().as_uri(),
        "--host", host, "--port", str(port),
        "--workers", str(workers),
    ]  # fmt: skip


def api_url(host: str, port: int) -> str:
    """The readiness call: the experiment every ranker run is logged under."""
    reachable = "127.0.0.1" if host in ("0.0.0.0", "") else host  # a wildcard is not an address
    query = urllib.parse.urlencode({"experiment_name": EXPERIMENT})
    return f"http://{reachable}:{port}/api/2.0/mlflow/experiments/get-by-name?{query}"


def answers(url: str, timeout: float = REQUEST_TIMEOUT) -> bool:
    """True when the tracking API returns the experiment."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = json.loads(response.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
        return False
    return bool(body.get("experiment", {}).get("name") == EXPERIMENT)


def wait_until_ready(server: subprocess.Popen[bytes], url: str, timeout: float) -> float:
    """Poll `url` until it answers; return the seconds it took. Raises `UiNotReady`."""
    started = time.monotonic()
    while not answers(url):
        if server.poll() is not None:
            raise UiNotReady(f"the MLflow server exited with code {server.returncode}")
        if time.monotonic() - started > timeout:
            raise UiNotReady(f"the MLflow tracking API did not answer {url} in {timeout:.0f} s")
        time.sleep(_POLL_PAUSE)
    return time.monotonic() - started


def start(command: list[str]) -> subprocess.Popen[bytes]:
    """The server in a process group of its own, so that stopping it stops its workers too."""
    return subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)


def stop(server: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    """SIGTERM to the whole group, SIGKILL if it lingers; return the server's exit code."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            break
        try:
            server.wait(timeout=timeout)
            break
        except subprocess.TimeoutExpired:
            continue
    return server.wait()
