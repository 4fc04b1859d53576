"""Chaos run: the closed loop under crashes, as an outside team would try it.

    make chaos                # or: python -m benchmarks.chaos [--events N] [--kill-every S]

The steady loop (`pipeline.simulation.steady_loop`: Valid Offers, two rankers and the learner, each
restarted at once when it exits, as a supervisor would; a channel answering decisions late in
event time) runs while a random μ-product (each in turn, in a seeded order) is SIGKILLed every
~20 s. Twice: on a real Kafka with exactly-once (a local one is started if none is configured
and Java is present), and on the embedded broker with at-least-once.

Each run reports decisions lost, duplicated and late, labels told against labels learned, dead
letters, partitions that moved between rankers, and event→decision latency overall and in the
30 s after each kill; then, on Kafka, how long a dead producer's open transaction blocks
readers (`benchmarks.dead_transaction`). The figures go to `benchmarks/results/chaos-<time>.json`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks import dead_transaction
from benchmarks.brokers import embedded, kafka, kafka_at_hand
from benchmarks.record import write_result
from pipeline.settings import Settings
from pipeline.simulation.steady_loop import LoopConfig, LoopReport, run_loop

RUNS = {"kafka": ("exactly-once", kafka), "embedded": ("at-least-once", embedded)}


def chaos(broker: str, config: LoopConfig) -> LoopReport:
    guarantee, start = RUNS[broker]
    with start() as (address, pid):
        settings = Settings(
            broker_address=address,
            processing_guarantee=guarantee,  # type: ignore[arg-type]
            topic_prefix=f"chaos-{broker}-{int(time.time())}",
            state_dir=Path(tempfile.mkdtemp(prefix="nbo-chaos-state-")),
            mlflow_tracking=False,
        )
        return run_loop(settings, config, pid)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def table(broker: str, report: LoopReport) -> Table:
    guarantee = RUNS[broker][0]
    summary = Table("", "figure", title=f"{broker}, {guarantee}, {len(report.kills)} kills")
    latency = report.latency
    rows = {
        "events / decided / lost": f"{report.events:,} / {report.decided:,} / "
        f"{len(report.undecided):,}",
        "duplicate decisions": f"{report.duplicates:,}",
        "late decisions (> 10 s)": f"{report.late:,}",
        "labels told / learned": f"{report.labels_told:,} / {report.labels_learned or 0:,}",
        "dead letters": f"{report.dead_letters:,}",
        "partitions moved between rankers": f"{len(report.partition_moves)}",
        "crashes nobody asked for": f"{len(report.crashes)}",
        "customers who changed group": f"{len(report.group_changes)} (customers per group: "
        f"{report.customers_per_group})",
        "event→decision p50 / p99 / max s": f"{_seconds(latency.p50)} / "
        f"{_seconds(latency.p99)} / {_seconds(latency.max)}",
    }
    for name, value in rows.items():
        summary.add_row(name, value)
    for kill in report.kills:
        by = ", ".join(f"{k} {v}" for k, v in sorted(kill.decided_by.items()))
        summary.add_row(
            f"kill {kill.victim} at {kill.at:.0f} s",
            f"30 s after: p99 {_seconds(kill.after.p99)}, max {_seconds(kill.after.max)}; "
            f"decided by {by}",
        )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=16_000)
    parser.add_argument("--rate", type=float, default=80.0)
    parser.add_argument("--kill-every", type=float, default=20.0, help="seconds")
    parser.add_argument("--brokers", nargs="+", default=list(RUNS), choices=list(RUNS))
    args = parser.parse_args()
    config = LoopConfig(events=args.events, rate=args.rate, customers=2_000, rankers=2,
                        kill_every=args.kill_every, window=60.0)  # fmt: skip
    console = Console() if sys.stdout.isatty() else Console(width=160)  # a log keeps rows whole
    results: dict[str, Any] = {}
    for broker in args.brokers:
        if broker == "kafka" and not kafka_at_hand():
            console.print("[yellow]kafka: skipped (no Kafka configured, no Java to start one)[/]")
            continue
        console.print(f"[dim]{broker}: {args.events:,} events at {args.rate:.0f}/s, a kill "
                      f"every ~{args.kill_every:.0f} s…[/]")  # fmt: skip
        report = chaos(broker, config)
        console.print(table(broker, report))
        results[broker] = report.figures()
    if "kafka" in results:
        console.print("[dim]kafka: a dead producer's open transaction…[/]")
        with kafka() as (address, _):
            results["dead transaction"] = dead_transaction.measure(address)
        for row in results["dead transaction"]:
            console.print(
                f"kafka: transaction timeout {row['transaction timeout ms']} ms, restarted with "
                f"the same id: {row['restarted with the same id']}: read_committed readers "
                f"blocked {row['readers blocked s']} s"
            )
    console.print(f"written {write_result('chaos', results, config=vars(args))}")


if __name__ == "__main__":
    main()
