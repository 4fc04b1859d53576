"""Run the benchmarks in one command; print a table with ratios to the ceiling; write JSON.

make bench                         # or: python -m benchmarks.run
python -m benchmarks.run ranker    # only the cases whose name contains a word given

Each case gets a fresh embedded broker: Tansu keeps every record in memory, and the gigabyte an
earlier case leaves behind would slow the next one down.
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks import cases
from pipeline.broker import EmbeddedBroker
from pipeline.settings import Settings

RESULTS = Path(__file__).parent / "results"
CEILING = "pass-through"
GOALS = {  # from the issues: what each figure should reach on this 2-core machine
    "valid offers": ("≥ 0.5 × ceiling", lambda r: r["ratio to ceiling"] >= 0.5),
    "ranker": ("≥ 5,000/s", lambda r: r["events/s"] >= 5000),
    "full loop": ("p99 < 50 ms", lambda r: r["latency p99 ms"] < 50),
}
REFERENCES = {  # cases of nbo's shape with none of its work: the best any nbo could do here
    "valid offers shape, no work": "best rate for Valid Offers",
    "two pass-through hops": "best latency for the loop",
}


def _settings(address: str, name: str) -> Settings:
    return Settings(
        broker_address=address,
        topic_prefix="bench-" + "".join(c if c.isalnum() else "-" for c in name),
        state_dir=Path(tempfile.mkdtemp(prefix="nbo-bench-state-")),
        mlflow_tracking=False,  # benchmark models are not for review
    )


def run_cases(only: list[str], console: Console) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    chosen = {n: c for n, c in cases.STREAMS.items() if not only or any(w in n for w in only)}
    if chosen and CEILING not in chosen:  # every ratio needs the ceiling of the same run
        chosen = {CEILING: cases.STREAMS[CEILING], **chosen}
    for name, case in chosen.items():
        console.print(f"[dim]running {name}…[/]")
        started = time.monotonic()
        with EmbeddedBroker() as broker:
            assert broker.address is not None
            results[name] = cases.run_stream(case, _settings(broker.address, name), broker.address)
        results[name]["seconds"] = time.monotonic() - started
    if results:
        ceiling = results[CEILING]["events/s"]
        for figures in results.values():
            figures["ratio to ceiling"] = figures["events/s"] / ceiling
    if not only or any(word in "file load" for word in only):
        console.print("[dim]running file load…[/]")
        with EmbeddedBroker() as broker:
            assert broker.address is not None
            results["file load"] = cases.file_load(
                _settings(broker.address, "load"), broker.address
            )
    return results


def table(results: dict[str, dict[str, Any]]) -> Table:
    shown = Table(
        "case", "events/s", "× ceiling", "p50 ms", "p99 ms", "peak MB", "goal",
        title="nbo bench (ceiling: a pass-through Quix app)",
    )  # fmt: skip
    for name, r in results.items():
        if name not in cases.STREAMS:
            continue
        goal, met = GOALS.get(name, (REFERENCES.get(name, ""), None))
        verdict = "" if met is None else (" [green]met[/]" if met(r) else " [red]not met[/]")
        shown.add_row(
            name,
            f"{r['events/s']:,.0f}",
            f"{r['ratio to ceiling']:.2f}",
            f"{r['latency p50 ms']:.1f}",
            f"{r['latency p99 ms']:.1f}",
            f"{r['peak memory MB']:,.0f}",
            goal + verdict,
        )
    return shown


def reference_lines(results: dict[str, dict[str, Any]]) -> list[str]:
    """What the references say about the goals, when both sides ran."""
    lines = []
    shape, valid = results.get("valid offers shape, no work"), results.get("valid offers")
    if shape and valid:
        lines.append(
            f"valid offers: {valid['events/s'] / shape['events/s']:.2f} × the rate of its shape "
            f"with no work, which is itself {shape['ratio to ceiling']:.2f} × the ceiling"
        )
    hops, loop = results.get("two pass-through hops"), results.get("full loop")
    if hops and loop:
        lines.append(
            f"full loop: p99 {loop['latency p99 ms']:.1f} ms; two pass-through hops on the same "
            f"broker: p99 {hops['latency p99 ms']:.1f} ms"
        )
    return lines


def main(only: list[str]) -> None:
    console = Console() if sys.stdout.isatty() else Console(width=120)  # a log keeps rows whole
    started = time.monotonic()
    results = run_cases(only, console)
    console.print(table(results))
    console.print(
        f"latency at a steady {cases.STEADY_RATE:,.0f} records/s; events/s from a backlog of "
        f"{cases.BACKLOG:,}; the ranker's records each carry 20 candidate offers"
    )
    for line in reference_lines(results):
        console.print(line)
    if "file load" in results:
        load = results["file load"]
        console.print(
            f"file load: {load['records']:,} events validated and produced at "
            f"{load['load (validate + produce) rec/s']:,.0f}/s, read back at "
            f"{load['read back rec/s']:,.0f}/s"
        )
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"bench-{stamp}.json"
    meta = {
        "machine": platform.platform(),
        "python": platform.python_version(),
        "at": stamp,
        "seconds": time.monotonic() - started,
    }
    path.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    console.print(f"written {path} ({meta['seconds']:.0f} s)")


if __name__ == "__main__":
    main(sys.argv[1:])
