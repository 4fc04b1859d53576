"""`nbo ui` serves the MLflow UI on nbo's model store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from pipeline.broker import _free_loopback_port

UI_START_TIMEOUT = 90.0


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, b""


def test_nbo_ui_serves_the_store_with_the_nbo_experiment(tmp_path: Path) -> None:
    port = _free_loopback_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "NBO_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "NBO_MLFLOW_ARTIFACTS_DIR": str(tmp_path / "artifacts"),
    }
    ui = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "ui", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # MLflow starts helper processes: stop them all at the end
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + UI_START_TIMEOUT
        while _get(f"{base}/health")[0] != 200:
            assert ui.poll() is None, "nbo ui exited"
            assert time.monotonic() < deadline, "the MLflow UI did not answer in time"
            time.sleep(0.2)
        status, body = _get(
            f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name=nbo-ranker"
        )
        assert status == 200
        assert json.loads(body)["experiment"]["name"] == "nbo-ranker"
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=30)
