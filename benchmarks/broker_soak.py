"""Broker soak: the steady closed loop on the embedded broker for an hour, as a notebook would.

    make broker-soak      # or: python -m benchmarks.broker_soak [--minutes 60] [--engine auto]

The steady loop (`pipeline.simulation.steady_loop`: Valid Offers, one ranker and the learner,
simulated customers answering on their channels) runs at 100 events/s on an embedded broker
of its own (`NBO_EMBEDDED_BROKER`'s kind: Kafka where Java 17+ is, else Tansu). Each 5-minute
window reports the broker's CPU share and resident memory and the loop's event→decision
p50 / p99 / max. The run passes when the broker's cost stays flat and decisions stay prompt:

- CPU in the last window ≤ 1.5 × that of minutes 5-10, and ≤ 0.3 of a core;
- resident memory in the last window ≤ 1.5 × that at minute 10;
- p99 ≤ 1 s in every window;
- no event left undecided.

The ranker's own process is followed too: its resident memory in the last window ≤ 1.1 × that
at minute 10 and ≤ 250 MB, its CPU ≤ 0.1 of a core.

The figures go to `benchmarks/results/broker-soak-<time>.json`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks.record import write_result
from pipeline.kafka.broker import embedded_broker
from pipeline.settings import Settings
from pipeline.simulation.steady_loop import LoopConfig, LoopReport, Window, run_loop

WINDOW = 300.0  # seconds
CPU_GROWTH = 1.5  # the last window's CPU over that of minutes 5-10, at most
CPU_CORES = 0.3  # the last window's CPU share, at most
MEMORY_GROWTH = 1.5  # the last window's resident memory over that at minute 10, at most
P99_SECONDS = 1.0  # every window's event→decision p99, at most
# The ranker's own: resident memory in the last window over that at minute 10, and at most so
# many MB; its CPU in the last window, in cores
RANKER_MEMORY_GROWTH, RANKER_MEMORY_MB, RANKER_CPU_CORES = 1.1, 250.0, 0.1


@dataclass(frozen=True)
class Goals:
    """Whether a soak met each goal, with the figures each compares."""

    cpu_flat: bool
    cpu_small: bool
    memory_flat: bool
    prompt: bool
    nothing_lost: bool
    cpu_ratio: float
    memory_ratio: float
    worst_p99: float
    ranker: RankerGoals | None = None  # None: the ranker's process was not followed

    @property
    def met(self) -> bool:
        return (
            self.cpu_flat
            and self.cpu_small
            and self.memory_flat
            and self.prompt
            and (self.nothing_lost)
            and (self.ranker is None or self.ranker.met)
        )


@dataclass(frozen=True)
class RankerGoals:
    """The ranker's memory from minute 10 to the end, and its CPU in the last window."""

    memory_ratio: float
    memory_mb: float
    cpu_share: float

    @property
    def met(self) -> bool:
        return (
            self.memory_ratio <= RANKER_MEMORY_GROWTH
            and self.memory_mb <= RANKER_MEMORY_MB
            and self.cpu_share <= RANKER_CPU_CORES
        )

    @classmethod
    def of(cls, report: LoopReport) -> RankerGoals | None:
        """From the windows that sampled the ranker (None if none did).

        >>> from pipeline.simulation.steady_loop import Latency, Window
        >>> fast = Latency(30_000, 0.02, 0.2, 0.4)
        >>> windows = [Window(300 * i, 300 * (i + 1), fast, 0.1, 400.0,
        ...                   {"ranker-0": (0.05, 200.0 + i)}) for i in range(12)]
        >>> RankerGoals.of(LoopReport(windows=windows))
        RankerGoals(memory_ratio=1.05, memory_mb=211.0, cpu_share=0.05)
        """
        sampled = [ranker for ranker in map(ranker_of, report.windows) if ranker is not None]
        if len(sampled) < 3:
            return None
        (_, at_ten), (cpu, last) = sampled[1], sampled[-1]
        return cls(round(last / max(at_ten, 1e-9), 2), last, cpu)


def ranker_of(window: Window) -> tuple[float, float] | None:
    """The (first) ranker's CPU share and resident MB in `window` (the steady loop names its
    rankers `ranker-0`, `ranker-1`, …)."""
    names = sorted(name for name in window.apps if name.startswith("ranker"))
    return window.apps[names[0]] if names else None


def goals(report: LoopReport) -> Goals:
    """Judge a soak of at least three windows by the goals in the module docstring.

    >>> from pipeline.simulation.steady_loop import Latency, Window
    >>> fast = Latency(30_000, 0.02, 0.2, 0.4)
    >>> flat = [Window(300 * i, 300 * (i + 1), fast, 0.10, 400.0) for i in range(12)]
    >>> goals(LoopReport(windows=flat)).met
    True
    >>> growing = [Window(300 * i, 300 * (i + 1), fast, 0.05 * (i + 1), 400.0) for i in range(12)]
    >>> judged = goals(LoopReport(windows=growing))
    >>> judged.cpu_flat, judged.cpu_ratio
    (False, 6.0)
    """
    windows = report.windows
    if len(windows) < 3:
        raise ValueError(f"a soak needs at least 3 windows of {WINDOW:.0f} s, got {len(windows)}")
    second, last = windows[1], windows[-1]
    if None in (second.broker_cpu_share, last.broker_cpu_share, second.broker_rss_mb):
        raise ValueError("the soak did not follow a broker process (a configured broker?)")
    cpu_ratio = (last.broker_cpu_share or 0.0) / max(second.broker_cpu_share or 0.0, 1e-9)
    memory_ratio = (last.broker_rss_mb or 0.0) / max(second.broker_rss_mb or 0.0, 1e-9)
    worst_p99 = max(window.latency.p99 or 0.0 for window in windows)
    return Goals(
        cpu_flat=cpu_ratio <= CPU_GROWTH,
        cpu_small=(last.broker_cpu_share or 0.0) <= CPU_CORES,
        memory_flat=memory_ratio <= MEMORY_GROWTH,
        prompt=worst_p99 <= P99_SECONDS,
        nothing_lost=not report.undecided,
        cpu_ratio=round(cpu_ratio, 2),
        memory_ratio=round(memory_ratio, 2),
        worst_p99=round(worst_p99, 3),
        ranker=RankerGoals.of(report),
    )


def soak(minutes: float, rate: float, engine: str) -> LoopReport:
    """The steady loop on an embedded broker of its own (never a configured one)."""
    settings = Settings(
        embedded_broker=engine,  # type: ignore[arg-type]
        topic_prefix="broker-soak",
        state_dir=Path(tempfile.mkdtemp(prefix="nbo-broker-soak-state-")),
        mlflow_tracking=False,
    )
    config = LoopConfig(events=int(minutes * 60 * rate), rate=rate, window=WINDOW)
    with embedded_broker(settings) as broker:
        on_it = settings.model_copy(update={"broker_address": broker.address})
        return run_loop(on_it, config, broker.pid)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def table(report: LoopReport) -> Table:
    rows = Table("minutes", "broker CPU (cores)", "broker RSS MB", "ranker CPU (cores)",
                 "ranker RSS MB", "decisions", "p50 / p99 / max s",
                 title="the embedded broker and the ranker, per window")  # fmt: skip
    for window in report.windows:
        latency = window.latency
        ranker = ranker_of(window)
        rows.add_row(
            f"{window.start / 60:.0f}-{window.end / 60:.0f}",
            f"{window.broker_cpu_share:.3f}" if window.broker_cpu_share is not None else "-",
            f"{window.broker_rss_mb:.0f}" if window.broker_rss_mb is not None else "-",
            f"{ranker[0]:.3f}" if ranker else "-",
            f"{ranker[1]:.0f}" if ranker else "-",
            f"{latency.count:,}",
            f"{_seconds(latency.p50)} / {_seconds(latency.p99)} / {_seconds(latency.max)}",
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=100.0, help="events per second")
    parser.add_argument("--engine", choices=["auto", "kafka", "tansu"], default="auto")
    args = parser.parse_args()
    console = Console() if sys.stdout.isatty() else Console(width=120)
    console.print(f"[dim]{args.minutes:.0f} minutes at {args.rate:.0f} events/s on the embedded "
                  f"broker ({args.engine})…[/]")  # fmt: skip
    report = soak(args.minutes, args.rate, args.engine)
    console.print(table(report))
    judged = goals(report)
    console.print(
        f"events {report.events:,}, decided {report.decided:,}, lost {len(report.undecided):,}; "
        f"CPU last / minutes 5-10 {judged.cpu_ratio} (≤ {CPU_GROWTH}), memory last / minute 10 "
        f"{judged.memory_ratio} (≤ {MEMORY_GROWTH}), worst window p99 {judged.worst_p99} s "
        f"(≤ {P99_SECONDS}): {'[green]met[/]' if judged.met else '[red]NOT met[/]'}"
    )
    if judged.ranker is not None:
        ranker = judged.ranker
        console.print(
            f"ranker: memory last / minute 10 {ranker.memory_ratio} (≤ {RANKER_MEMORY_GROWTH}), "
            f"{ranker.memory_mb:.0f} MB (≤ {RANKER_MEMORY_MB:.0f}), CPU {ranker.cpu_share} cores "
            f"(≤ {RANKER_CPU_CORES})"
        )
    results = {"report": report.figures(), "goals": {**asdict(judged), "met": judged.met}}
    console.print(f"written {write_result('broker-soak', results, config=vars(args))}")
    sys.exit(0 if judged.met else 1)


if __name__ == "__main__":
    main()
