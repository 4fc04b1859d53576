"""Where each benchmark's figures go: `benchmarks/results/<kind>-<UTC time>.json`, with the
machine, the Python version and the time they were measured at."""

from __future__ import annotations

import json
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def write_result(kind: str, results: Any, **meta: Any) -> Path:
    """Write `results` (JSON-ready; other values as text) with their circumstances; the path."""
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{kind}-{stamp}.json"
    circumstances = {"machine": platform.platform(), "python": platform.python_version(),
                     "at": stamp, **meta}  # fmt: skip
    path.write_text(json.dumps({"meta": circumstances, "results": results}, indent=2, default=str))
    return path
