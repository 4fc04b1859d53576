"""The benchmark cases. Each takes settings on a fresh topic prefix and returns its figures."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from pipeline import connectors, topics
from pipeline.kafka_io import consume
from pipeline.settings import Settings

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"


def load_events(settings: Settings, bootstrap: str, copies: int = 50) -> dict[str, Any]:
    """Validate and produce 50,000 journey events from a JSON Lines file, then read them back."""
    topics.create_topics(settings, bootstrap)
    lines = (SAMPLE / "events.jsonl").read_text().splitlines()
    path = Path(tempfile.mkdtemp(prefix="nbo-bench-")) / "events.jsonl"
    path.write_text("\n".join(lines * copies) + "\n")
    started = time.perf_counter()
    report = connectors.load_file(settings, bootstrap, "events", path)
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    read = sum(1 for _ in consume(settings, bootstrap, settings.topic_name("events")))
    read_seconds = time.perf_counter() - started
    path.unlink()
    return {
        "records": report.loaded,
        "load (validate + produce) rec/s": report.loaded / loaded,
        "read back rec/s": read / read_seconds,
    }


ALL = [("file load", load_events)]
