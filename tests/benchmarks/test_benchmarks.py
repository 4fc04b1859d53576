"""`make bench`, `make soak`, `make broker-soak` on a small scale: figures measured, not made up."""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from rich.console import Console

from benchmarks import broker_soak, cases, gateway, passthrough, run, soak
from pipeline.next_best_offer.state import MemoryState
from pipeline.settings import Settings
from pipeline.simulation.steady_loop import Latency, LoopReport, Window


@pytest.fixture
def run_small(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], dict[str, Any]]:
    """Runs a `make bench` case on 2,000 records and 2 s of steady load, on the test broker."""
    monkeypatch.setattr(cases, "BACKLOG", 2_000)
    monkeypatch.setattr(cases, "STEADY_SECONDS", 2)

    def run_case(name: str) -> dict[str, Any]:
        settings = make_settings(mlflow_tracking=False)
        assert settings.broker_address is not None
        return cases.run_stream(cases.STREAMS[name], settings, settings.broker_address)

    return run_case


def test_a_streaming_case_measures_rate_latency_and_memory(
    run_small: Callable[[str], dict[str, Any]],
) -> None:
    figures = run_small(cases.RANKER_SCRAPED)  # the ranker, its metrics scraped every second
    assert figures["scrapes"] >= 1
    assert figures["events/s"] > 0 and figures["steady events"] == 2_000
    assert 0 < figures["latency p50 ms"] <= figures["latency p99 ms"] < 10_000
    assert set(figures["peak memory MB per process"]) == {"ranker"}
    assert figures["peak memory MB"] > 50  # a Python process with Quix and River loaded
    assert figures["apps CPU s per 1,000 events"] > 0
    assert figures["broker CPU s per 1,000 events"] == 0  # no broker process given to measure


def test_the_soak_run_samples_each_process_memory_along_the_way(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(mlflow_tracking=False)
    result = soak.soak(3_000, 300, Console(quiet=True), settings, sample_every=1_000)
    assert result["events"] == 3_000
    curve = result["curve"]
    assert [point["events"] for point in curve] == [1_000, 2_000, 3_000]
    processes = {"valid-offers", "ranker", "learner", "gateway"}
    assert all(point[name] > 50 for point in curve for name in processes)
    assert set(result["growth MB over the last quarter"]) == processes
    assert {"valid-offers", "ranker"} <= set(result["state on disk MB"])


def test_the_stateful_reference_counts_and_remembers_per_key() -> None:
    state = MemoryState()
    for index in range(25):
        raw = json.dumps({"event_id": f"e{index}", "event_type": f"t{index}"}).encode()
        output = passthrough.count_and_remember(raw, state)  # type: ignore[arg-type]
    assert output == {"id": "e24", "count": 25}
    assert state["seen"]["recent"] == [f"t{i}" for i in range(5, 25)]  # the last 20


def test_the_valid_offers_shape_reference_streams(
    run_small: Callable[[str], dict[str, Any]],
) -> None:
    shape = run_small("valid offers shape, no work")
    assert shape["events/s"] > 0 and shape["steady events"] == 2_000
    assert set(shape["peak memory MB per process"]) == {"reference"}


def test_the_reference_lines_put_each_goal_beside_its_reference() -> None:
    results = {
        "valid offers shape, no work": {"events/s": 40_000.0, "ratio to ceiling": 0.48},
        "valid offers": {"events/s": 11_000.0},
        "two pass-through hops": {"latency p99 ms": 51.46},
        "full loop": {"latency p99 ms": 245.14},
    }
    assert run.reference_lines(results) == [
        "valid offers: 0.28 × the rate of its shape with no work, which is itself 0.48 × the "
        "ceiling",
        "full loop: p99 245.1 ms; two pass-through hops on the same broker: p99 51.5 ms",
    ]
    assert run.reference_lines({"valid offers": {"events/s": 11_000.0}}) == []


def test_the_embedded_broker_cpu_goal_is_a_ratio_to_the_setting_before_in_the_same_run() -> None:
    cpu = "broker CPU s per 1,000 events"
    loop = {"latency p99 ms": 180.0, cpu: 0.17}
    results = {"embedded": {"full loop": loop, cases.LOOP_BEFORE: {cpu: 0.40}}}
    met = run.GOALS["full loop"][1]
    assert met(results, "embedded") is True
    costlier = {"embedded": {"full loop": loop, cases.LOOP_BEFORE: {cpu: 0.30}}}
    assert met(costlier, "embedded") is False
    assert met({"embedded": {"full loop": loop}}, "embedded") is None  # the reference did not run
    assert run.reference_lines(results["embedded"])[-1] == (
        "full loop: broker CPU 0.170 s per 1,000 events, 0.42 × the 0.400 with a 10 ms fetch wait"
    )
    # the reference is a case of the embedded broker only, with the wait of before
    assert cases.STREAMS[cases.LOOP_BEFORE].broker == "embedded"
    assert cases.STREAMS[cases.LOOP_BEFORE].settings == {"fetch_wait_max_ms": 10}


def test_each_embedded_case_gets_a_fresh_broker() -> None:
    quiet = Console(file=io.StringIO())
    with (
        run.brokers_for_cases("embedded", quiet) as broker,
        broker() as (first, _pids),
        broker() as (second, _other),
    ):
        assert first != second


def _window(index: int, cpu: float, rss: float, p99: float) -> Window:
    latency = Latency(30_000, p99 / 10, p99, p99 * 2)
    return Window(300.0 * index, 300.0 * (index + 1), latency, cpu, rss)


def test_the_broker_soak_judges_cpu_memory_latency_and_losses_by_their_windows() -> None:
    flat = [_window(i, 0.1, 500.0, 0.2) for i in range(12)]
    assert broker_soak.goals(LoopReport(windows=flat)).met

    memory_grows = [*flat[:-1], _window(11, 0.1, 800.0, 0.2)]
    judged = broker_soak.goals(LoopReport(windows=memory_grows))
    assert (judged.memory_flat, judged.memory_ratio, judged.met) == (False, 1.6, False)

    busy_but_flat = [_window(i, 0.5, 500.0, 0.2) for i in range(12)]
    judged = broker_soak.goals(LoopReport(windows=busy_but_flat))
    assert (judged.cpu_flat, judged.cpu_small) == (True, False)

    one_slow_window = [*flat[:5], _window(5, 0.1, 500.0, 1.5), *flat[6:]]
    judged = broker_soak.goals(LoopReport(windows=one_slow_window))
    assert (judged.prompt, judged.worst_p99) == (False, 1.5)

    lost = broker_soak.goals(LoopReport(windows=flat, undecided=["e-1"]))
    assert not lost.nothing_lost and not lost.met


def test_the_broker_soak_refuses_too_short_a_run_or_no_broker_process() -> None:
    with pytest.raises(ValueError, match="at least 3 windows"):
        broker_soak.goals(LoopReport(windows=[_window(0, 0.1, 500.0, 0.2)]))
    unwatched = [Window(300.0 * i, 300.0 * (i + 1), Latency(1, 0.1, 0.1, 0.1), None, None)
                 for i in range(3)]  # fmt: skip
    with pytest.raises(ValueError, match="did not follow a broker process"):
        broker_soak.goals(LoopReport(windows=unwatched))


def test_the_ranker_goal_is_a_share_of_the_ceiling_and_its_cpu_in_the_same_run() -> None:
    cpu = "apps CPU s per 1,000 events"
    ceiling = {"events/s": 60_000.0}
    met = run.GOALS["ranker"][1]
    at_speed = {"pass-through": ceiling, "ranker": {"events/s": 4_500.0, cpu: 0.2}}
    assert met({"embedded": at_speed}, "embedded") is True
    slow = {"pass-through": ceiling, "ranker": {"events/s": 4_000.0, cpu: 0.2}}
    assert met({"embedded": slow}, "embedded") is False
    costly = {"pass-through": ceiling, "ranker": {"events/s": 4_500.0, cpu: 0.3}}
    assert met({"embedded": costly}, "embedded") is False
    # on Kafka, also ≥ 0.8 × its rate on the embedded broker
    kafka = {"pass-through": ceiling, "ranker": {"events/s": 4_300.0, cpu: 0.2}}
    assert met({"embedded": at_speed, "kafka": kafka}, "kafka") is True
    lagging = {"pass-through": {"events/s": 40_000.0}, "ranker": {"events/s": 3_000.0, cpu: 0.2}}
    assert met({"embedded": at_speed, "kafka": lagging}, "kafka") is False
    assert met({"embedded": {"ranker": at_speed["ranker"]}}, "embedded") is None
    assert cases.STREAMS[cases.RANKER_DEFAULT_FEATURES].settings == {"feature_set": "default"}


def test_serving_metrics_may_cost_at_most_5_percent_of_the_same_case_s_rate() -> None:
    met = run.GOALS[cases.RANKER_SCRAPED][1]
    plain = {"ranker": {"events/s": 1_000.0}}
    assert met({"kafka": {**plain, cases.RANKER_SCRAPED: {"events/s": 960.0}}}, "kafka") is True
    assert met({"kafka": {**plain, cases.RANKER_SCRAPED: {"events/s": 940.0}}}, "kafka") is False
    assert met({"kafka": {cases.RANKER_SCRAPED: {"events/s": 940.0}}}, "kafka") is None
    assert cases.STREAMS[cases.VALID_OFFERS_SCRAPED].scraped


def test_the_gateway_case_counts_a_decision_missing_doubled_or_on_another_customers_stream() -> (
    None
):
    def decision(number: int, customer: str) -> dict[str, Any]:
        return {"decision_id": f"d-S{number}", "event_id": f"S{number}", "customer_id": customer}

    expected = {"A": Counter({"d-S1": 1, "d-S2": 1}), "B": Counter({"d-S3": 1})}
    received = {
        "A": [decision(0, "A"), decision(1, "A"), decision(1, "A")],  # S0: an earlier phase's
        "B": [decision(2, "A")],
    }
    figures = gateway.fan_out_figures(
        received, expected, {"S1", "S2", "S3"}, events=3, memory=[100.0, 120.0]
    )
    assert figures["decisions"] == 3
    assert (figures["missing"], figures["extra (twice, or not its own)"]) == (2, 2)
    assert figures["to another customer's stream"] == 1
    assert figures["delivered to their own stream"] == 1
    assert figures["gateway memory MB, peak"] == 120.0


def test_a_pair_runs_twice_each_in_turn_and_gives_the_mean_of_its_runs() -> None:
    chosen = {
        name: cases.STREAMS[name] for name in ("pass-through", "ranker", cases.RANKER_SCRAPED)
    }
    assert run._in_pairs(chosen) == [
        "pass-through",
        "ranker",
        cases.RANKER_SCRAPED,
        cases.RANKER_SCRAPED,
        "ranker",
    ]
    alone = {cases.RANKER_SCRAPED: cases.STREAMS[cases.RANKER_SCRAPED]}
    assert run._in_pairs(alone) == [cases.RANKER_SCRAPED]
    mean = run._mean([{"events/s": 600.0, "peak memory MB": 280.0, "phase": "a"},
                      {"events/s": 700.0, "peak memory MB": 290.0, "phase": "b"}])  # fmt: skip
    assert mean == {"events/s": 650.0, "peak memory MB": 285.0, "phase": "a",
                    "events/s of each run": [600.0, 700.0]}  # fmt: skip
