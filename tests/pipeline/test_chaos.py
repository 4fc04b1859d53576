"""Crashes in a running loop (the short `make chaos`): every μ-product SIGKILLed in turn while
events flow, each restarted at once as a supervisor would. Nothing is lost, every label is
learned once, no restart dead-letters a label, and no decision comes later than the bound."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pipeline.settings import Settings
from pipeline.simulation.steady_loop import LoopConfig, LoopReport, run_loop

# Kafka's bound in the terms: a restart (process start, tables, models, rejoin) plus the
# checkpoints of two hops under exactly-once
LATEST_DECISION = 20.0
# A kill every ~10 s while 48 s of events flow: each μ-product in turn (the order is seeded)
CONFIG = LoopConfig(events=2_880, rate=60.0, customers=600, rankers=2, kill_every=10.0)


def assert_nothing_lost(report: LoopReport) -> None:
    """Each μ-product killed, every event decided, every label learned once, no dead letter,
    and nothing exited that was not killed."""
    figures = report.figures()
    assert {kill.victim for kill in report.kills} == set(CONFIG.apps()), figures  # each, 1+
    assert report.undecided == [] and report.decided == CONFIG.events, figures
    assert report.labels_learned == report.labels_told > 0, figures
    assert report.dead_letters == 0, figures  # no label lost to a restart
    assert report.crashes == [], figures
    # customers keep their group through every kill and restart, and both groups are there
    assert report.group_changes == [], figures
    assert set(report.customers_per_group) == {"treatment", "control/random"}, figures


@pytest.mark.real_kafka
def test_kafka_exactly_once_through_a_kill_of_each_stage(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(processing_guarantee="exactly-once", mlflow_tracking=False)
    report = run_loop(settings, CONFIG)
    assert_nothing_lost(report)
    figures = report.figures()
    assert report.duplicates == 0, figures
    # a restarted ranker or Valid Offers takes its own partitions back: none moved
    assert report.partition_moves == [], figures
    assert report.latency.max is not None and report.latency.max <= LATEST_DECISION, figures


@pytest.mark.embedded_broker
def test_embedded_at_least_once_through_a_kill_of_each_stage(
    make_settings: Callable[..., Settings],
) -> None:
    assert_nothing_lost(run_loop(make_settings(mlflow_tracking=False), CONFIG))
