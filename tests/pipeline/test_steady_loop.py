"""The closed loop as an outside team drives it: a steady event rate, answers late in event time,
a new offer mid-stream. Every event gets exactly one decision, and nothing stalls."""

from __future__ import annotations

from collections.abc import Callable

from pipeline.settings import Settings
from pipeline.simulation.steady_loop import LoopConfig, run_loop


def test_every_event_of_a_steady_loop_gets_exactly_one_decision(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(mlflow_tracking=False, stall_timeout=30.0)
    config = LoopConfig(events=4_000, rate=200.0, customers=600, idle_timeout=60.0)
    report = run_loop(settings, config)
    figures = report.figures()
    assert report.undecided == [], figures
    assert (report.events, report.decided, report.duplicates) == (4_000, 4_000, 0), figures
    assert report.interactions > report.decided  # an impression each, and answers
    assert report.dead_letters == 0
    assert report.exit_codes == {"valid-offers": 0, "ranker-0": 0, "learner": 0}
    assert report.crashes == [] and report.labels_learned == report.labels_told > 0
