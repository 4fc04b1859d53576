"""Soak run: the whole closed loop over many customers, watching memory level off.

make soak                                    # or: python -m benchmarks.soak [EVENTS] [CUSTOMERS]

It runs the demo's closed loop (the three μ-products as processes, simulated customers answering on
their channels, the learner learning) for 200,000 events over 10,000 customers, samples each
process's resident memory every `SAMPLE_EVERY` events, and reports the curve, the growth over
the last quarter of the run, and the state each μ-product keeps on disk per customer.

Why memory levels off: per customer, state is capped (20 recent events, 20 pending decisions,
50 impressions per offer and channel) and lives in RocksDB on disk, not in the heap; what a
process holds in memory is bounded by the catalogue (offers, rules, a rule memo of at most
200,000 entries) and by RocksDB's own caches.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.record import write_result
from pipeline.settings import Settings
from pipeline.simulation.demo import DemoConfig, DemoReport, run_demo

SAMPLE_EVERY = 10_000


def _directory_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def soak(
    events: int,
    customers: int,
    console: Console,
    settings: Settings | None = None,
    sample_every: int = SAMPLE_EVERY,
) -> dict[str, Any]:
    """Run the loop; return its figures. Without `settings`: an embedded broker of its own."""
    if settings is None:
        settings = Settings(
            state_dir=Path(tempfile.mkdtemp(prefix="nbo-soak-state-")),
            topic_prefix="soak",
            mlflow_tracking=False,
        )
    state_dir = settings.state_dir
    curve: list[dict[str, Any]] = []

    def sample(report: DemoReport, last: bool = False) -> None:
        if not curve or report.events - curve[-1]["events"] >= sample_every or last:
            curve.append(
                {
                    "events": report.events,
                    "seconds": round(report.seconds, 1),
                    **{name: round(mb, 1) for name, mb in report.memory_mb.items()},
                }
            )
            console.print(curve[-1])

    config = DemoConfig(events=events, seconds=float("inf"), batch=1000, customers=customers)
    report = run_demo(settings, config, sample)
    if curve[-1]["events"] != report.events:
        sample(report, last=True)
    processes = [name for name in curve[-1] if name not in ("events", "seconds")]
    quarter = next(point for point in curve if point["events"] >= events * 3 // 4)
    return {
        "events": report.events,
        "customers": customers,
        "seconds": report.seconds,
        "events/s": report.events / report.seconds,
        "interactions": report.interactions,
        "model version": report.model_version,
        "curve": curve,
        "peak MB": {name: max(point[name] for point in curve) for name in processes},
        "growth MB over the last quarter": {
            name: round(curve[-1][name] - quarter[name], 1) for name in processes
        },
        "state on disk MB": {
            path.name: _directory_mb(path)
            for path in sorted(state_dir.glob("*/*"))
            if path.is_dir()
        },
    }


def main(events: int = 200_000, customers: int = 10_000) -> None:
    console = Console()
    result = soak(events, customers, console)
    curve = Table("events", "seconds", *result["peak MB"], title="resident memory (MB)")
    for point in result["curve"]:
        curve.add_row(*(f"{value:,}" for value in point.values()))
    console.print(curve)
    console.print(
        f"{result['events']:,} events over {customers:,} customers in {result['seconds']:.0f} s "
        f"({result['events/s']:,.0f}/s), {result['interactions']:,} interactions learned from; "
        f"model {result['model version']}"
    )
    console.print(f"peak (MB): {result['peak MB']}")
    console.print(f"growth over the last quarter (MB): {result['growth MB over the last quarter']}")
    console.print(f"state on disk (MB): {result['state on disk MB']}")
    path = write_result("soak", result)
    console.print(f"written {path}")


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:]))
