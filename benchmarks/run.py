"""Run every benchmark in one process on one embedded broker; print a table, write JSON.

make bench            # or: python -m benchmarks.run
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks import cases
from pipeline.broker import EmbeddedBroker
from pipeline.settings import Settings

RESULTS = Path(__file__).parent / "results"
BENCHMARKS: list[tuple[str, Callable[[Settings, str], dict[str, Any]]]] = cases.ALL


def main(only: list[str]) -> None:
    console = Console()
    results: dict[str, dict[str, Any]] = {}
    chosen = [(n, b) for n, b in BENCHMARKS if not only or any(word in n for word in only)]
    with EmbeddedBroker() as broker:
        assert broker.address is not None
        for index, (name, bench) in enumerate(chosen):
            settings = Settings(
                broker_address=broker.address,
                topic_prefix=f"bench{index}",
                state_dir=Path(tempfile.mkdtemp(prefix="nbo-bench-state-")),
                mlflow_tracking=False,  # benchmark models are not for review
            )
            console.print(f"[dim]running {name}…[/]")
            results[name] = bench(settings, broker.address)
    table = Table("benchmark", "figure", "value")
    for name, figures in results.items():
        for figure, value in figures.items():
            shown = f"{value:,.2f}" if isinstance(value, float) else str(value)
            table.add_row(name, figure, shown)
    console.print(table)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"bench-{stamp}.json"
    meta = {"machine": platform.platform(), "python": platform.python_version(), "at": stamp}
    path.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    console.print(f"written {path}  ({time.process_time():.1f} s CPU)")


if __name__ == "__main__":
    main(sys.argv[1:])
