"""Does the impact report tell the truth? Demos with a random-offer control group, per world and
seed: the report's 95% interval for the lift (from the labels on the topics) against the lift
the simulation knows (its own expected value of what each group was shown, same decisions).

make impact            # or: python -m benchmarks.impact [EVENTS] [SEEDS] [WORLD ...]

SEEDS is a count (10: seeds 1-10) or a range (4-10), so that a long run can be taken in parts.

Defaults: 50,000 events, seeds 1-10, both worlds, a 10% control share; the goal is coverage in
at least 9 seeds of 10 per world. Results go to benchmarks/results/impact-*.json.
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
from pipeline.simulation.demo import DemoConfig, run_demo
from pipeline.simulation.worlds import WORLDS

CONTROL_SHARE = 0.10
GOAL = 0.9  # share of seeds whose interval covers the simulation's lift


def one_run(world: str, seed: int, events: int) -> dict[str, Any]:
    """One demo's report and truth: per group value per decision, and the lift."""
    with tempfile.TemporaryDirectory(prefix="nbo-impact-") as directory:
        settings = Settings(
            state_dir=Path(directory) / "state",
            topic_prefix=f"impact-{world}-{seed}-{Path(directory).name[-6:]}",
            mlflow_tracking=False,
            control_share=CONTROL_SHARE,
            control_baselines={"random": 1.0},
        )
        config = DemoConfig(events=events, seconds=1e9, seed=seed, world=world)
        figures = run_demo(settings, config).figures()
    groups = {g.group: g for g in figures.impact}
    treatment, control = groups["treatment"], groups["control/random"]
    true_lift = treatment.true_value - control.true_value
    lift = figures.lifts[0].absolute
    return {
        "world": world,
        "seed": seed,
        "decisions": {name: g.decisions for name, g in groups.items()},
        "value_measured": {name: g.measured.mean for name, g in groups.items()},
        "value_true": {name: g.true_value for name, g in groups.items()},
        "lift": {"mean": lift.mean, "low": lift.low, "high": lift.high},
        "true_lift": true_lift,
        "covered": lift.covers(true_lift),
        "value_vs_oracle": figures.recent.value_vs_oracle,
    }


def seed_range(text: str) -> range:
    """The seeds a SEEDS argument names: a count from 1, or a range.

    >>> list(seed_range("3")), list(seed_range("4-6"))
    ([1, 2, 3], [4, 5, 6])
    """
    first, _, last = text.partition("-")
    return range(int(first), int(last) + 1) if last else range(1, int(first) + 1)


def main() -> None:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    seeds = seed_range(sys.argv[2]) if len(sys.argv) > 2 else range(1, 11)
    worlds = sys.argv[3:] or sorted(WORLDS)
    console = Console()
    runs = []
    for world in worlds:
        for seed in seeds:
            runs.append(one_run(world, seed, events))
            run = runs[-1]
            console.print(f"{world} seed {seed}: lift {run['lift']['mean']:.2f} "
                          f"[{run['lift']['low']:.2f}, {run['lift']['high']:.2f}], "
                          f"simulation {run['true_lift']:.2f}: "
                          f"{'covered' if run['covered'] else 'NOT covered'}")  # fmt: skip
    table = Table("world", "seeds covered", "goal", "treatment value/decision (mean)")
    verdicts = {}
    for world in worlds:
        mine = [run for run in runs if run["world"] == world]
        covered = sum(run["covered"] for run in mine)
        verdicts[world] = covered >= GOAL * len(mine)
        value = sum(run["value_true"]["treatment"] for run in mine) / len(mine)
        table.add_row(world, f"{covered} of {len(mine)}",
                      "met" if verdicts[world] else "NOT met", f"{value:.2f}")  # fmt: skip
    console.print(table)
    path = write_result("impact", {"runs": runs, "met": verdicts}, events=events,
                        control_share=CONTROL_SHARE)  # fmt: skip
    console.print(f"results: {path}")


if __name__ == "__main__":
    main()
