"""`nbo ui` serves the MLflow UI on nbo's model store, and says so only once its API answers."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from local_kafka.cluster import free_port
from pipeline.cli import tracking_ui
from pipeline.errors import UiNotReady
from tests.factories import eventually

UI_START_TIMEOUT = 180.0  # the install's first MLflow start on a busy 2-core machine


def _lines(stream: object) -> queue.Queue[str]:
    """The lines a process prints, as they come, readable with a bounded wait."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for raw in stream:  # type: ignore[attr-defined]
            lines.put(raw.decode(errors="replace"))

    threading.Thread(target=pump, daemon=True).start()
    return lines


def test_nbo_ui_announces_its_address_once_the_tracking_api_answers(tmp_path: Path) -> None:
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "COLUMNS": "200",  # one line for the announcement
        "NBO_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "NBO_MLFLOW_ARTIFACTS_DIR": str(tmp_path / "artifacts"),
    }
    ui = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "ui", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        printed = _lines(ui.stdout)

        def ready_line() -> str | None:
            assert ui.poll() is None, "nbo ui exited before it said it was ready"
            try:
                line = printed.get(timeout=1.0)
            except queue.Empty:
                return None
            return line if "ready on" in line else None

        line = eventually(ready_line, within=UI_START_TIMEOUT, what="nbo ui to say it is ready")
        assert f"http://127.0.0.1:{port}" in line
        # ready means ready: the very first API call after the announcement answers
        url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get-by-name?experiment_name=nbo-ranker"
        with urllib.request.urlopen(url, timeout=tracking_ui.REQUEST_TIMEOUT) as response:
            assert response.status == 200
            assert json.loads(response.read())["experiment"]["name"] == "nbo-ranker"
    finally:
        ui.send_signal(signal.SIGTERM)
        assert ui.wait(timeout=60) == 0
    # SIGTERM stopped the server's whole process group: nothing listens on the port any more
    assert not tracking_ui.answers(tracking_ui.api_url("127.0.0.1", port), timeout=2)


def test_a_server_that_exits_is_reported_not_waited_for() -> None:
    server = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    url = tracking_ui.api_url("127.0.0.1", free_port())
    with pytest.raises(UiNotReady, match="exited with code 3"):
        tracking_ui.wait_until_ready(server, url, timeout=60)


def test_a_server_that_never_answers_times_out_with_the_address() -> None:
    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    url = tracking_ui.api_url("0.0.0.0", free_port())
    try:
        with pytest.raises(UiNotReady, match=r"did not answer http://127\.0\.0\.1:\d+/api"):
            tracking_ui.wait_until_ready(server, url, timeout=0.5)
    finally:
        server.kill()
        server.wait()
