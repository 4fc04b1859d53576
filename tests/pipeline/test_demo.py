"""The closed loop end to end: a short headless demo on the embedded broker."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import psutil
from typer.testing import CliRunner

from pipeline.cli.app import app
from pipeline.settings import Settings
from pipeline.simulation.channel import Channel
from pipeline.simulation.demo import DemoConfig, _with_gateway, run_demo
from pipeline.simulation.world import NEW_OFFER, World


def test_short_headless_demo_decides_every_event_and_learns(make_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings: Settings = make_settings(model_publish_interval=0.5, control_share=0.2)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    config = DemoConfig(events=1500, batch=250, customers=300, seed=3, launch_at=500)
    report = run_demo(settings, config)
    figures = report.figures()
    assert report.events == 1500 and report.decisions == 1500  # every event decided
    board = report.scoreboard
    assert board.decisions == 1500 and board.shown > 800  # shown by the model (treatment)
    assert report.interactions >= board.shown  # every shown decision got an impression at least
    assert report.first_model_version == "bayesian_logistic-0"
    assert int(report.model_version.split("-")[1]) > 100  # the learner learned, in the loop
    assert report.exit_codes == {"valid-offers": 0, "ranker": 0, "learner": 0, "gateway": 0}
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= before  # all stopped
    assert report.page.startswith("http://127.0.0.1:") and "/#key=nbo_" in report.page
    assert figures.dead_letters == 0
    memory = figures.memory_mb
    assert set(memory) == {"valid-offers", "ranker", "learner", "gateway"} and all(
        mb > 50 for mb in memory.values()
    )
    assert figures.recent.decisions == board.shown
    assert 0 < figures.recent.random_acceptance < figures.recent.oracle_acceptance
    assert 0 < figures.recent.value_vs_oracle <= 1 < figures.recent.value_vs_random
    # the offer launched after 500 events reached the μ-products and was the best choice for some
    assert figures.launch is not None
    assert (figures.launch.offer_id, figures.launch.at_decision) == (NEW_OFFER["offer_id"], 500)
    assert figures.launch.decisions_best > 0
    assert figures.launch.put_first_when_best > 0  # the ranker knew of it: it was put first
    # the impact report, from the labels on the topics, beside the simulation's own values
    impact = {group.group: group for group in figures.impact}
    assert set(impact) == {"treatment", "control/random"}
    assert sum(g.decisions for g in impact.values()) == 1500
    assert impact["treatment"].true_value > impact["control/random"].true_value > 0
    assert all(g.measured.low <= g.measured.mean <= g.measured.high for g in impact.values())
    assert [lift.baseline for lift in figures.lifts] == ["control/random"]


def test_the_demo_binds_its_gateway_s_port_itself_another_one_when_it_is_taken(
    make_settings, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        served, page, listening = _with_gateway(make_settings(gateway_port=port), tmp_path)
        with listening:
            other = listening.getsockname()[1]
            assert other != port and served.gateway_port == other
            assert page.startswith(f"http://127.0.0.1:{other}/#key=nbo_")
            # it listens already, before any gateway runs: no process can take it meanwhile
            socket.create_connection(("127.0.0.1", other), timeout=5).close()


def test_demo_command_writes_a_json_report(make_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings: Settings = make_settings()
    env = {
        "NBO_BROKER_ADDRESS": settings.broker_address or "",
        "NBO_TOPIC_PREFIX": settings.topic_prefix,
        "NBO_STATE_DIR": str(settings.state_dir),
        "NBO_MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,  # not the working copy's
        "NBO_MLFLOW_ARTIFACTS_DIR": str(settings.mlflow_artifacts_dir),
    }
    report = tmp_path / "report.json"
    result = CliRunner().invoke(
        app,
        ["demo", "--events", "500", "--customers", "100", "--report", str(report)],
        env=env,
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(report.read_text())
    assert figures["events"] == 500 and figures["decisions"] == 500
    assert 0 < figures["recent"]["value_vs_oracle"] <= 1
    assert "summary" in result.output
    assert "the bank's page (open it in a browser): http://127.0.0.1:" in result.output


def test_simulation_is_seeded_and_the_channel_knows_the_truth() -> None:
    assert World(customers=20, seed=5).events(30) == World(customers=20, seed=5).events(30)
    world = World(customers=20, seed=5)
    customer = world.customers[0].customer_id
    offers = {
        "o1": {
            "category": "card",
            "value": 100.0,
            "primary_interest_days": 2.0,
            "secondary_interest_days": 5.0,
            "negative_impact_days": 20.0,
            "secondary_value_ratio": 0.5,
            "negative_value_ratio": -0.5,
        }
    }
    fresh = {
        "offer_id": "o1",
        "days_since_trigger": 0.5,
        "unanswered_impressions": 0,
    }
    stale = {**fresh, "days_since_trigger": 31.5}
    decision = {
        "decision_id": "d",
        "customer_id": customer,
        "channel": "web",
        "timestamp": "2026-11-01T12:00:00+00:00",
        "offers": [{"offer_id": "o1", "score": 1.0, "p_accept": 0.1, "phase": "primary"}],
    }
    channel = Channel(world, offers, seed=1)
    now = channel.respond({"candidates": [fresh]}, decision)
    later = channel.respond({"candidates": [stale]}, decision)
    assert now.learned.p_accept > later.learned.p_accept  # interest fades after the trigger
    assert now.oracle == now.learned and now.interactions[0]["outcome"] == "impression"
    assert world.p_accept(customer, "o1", "card", "primary", 2) < world.p_accept(
        customer, "o1", "card", "primary", 0
    )


def test_offers_of_a_category_differ_by_customer_and_a_launched_offer_is_the_best() -> None:
    world = World(customers=200, seed=5)
    cards = [f"card-0{i}" for i in range(1, 6)]
    appeal = {
        (c.customer_id, o): world.appeal(c.customer_id, o) for c in world.customers for o in cards
    }
    # within a category offers differ, and which is liked best depends on the customer
    assert len({round(a, 6) for a in appeal.values()}) > 10
    favourites = {max(cards, key=lambda o: appeal[c.customer_id, o]) for c in world.customers}
    assert len(favourites) > 1
    assert (
        World(customers=200, seed=5).appeal(world.customers[0].customer_id, "card-01")
        == (appeal[world.customers[0].customer_id, "card-01"])
    )  # seeded
    world.launch(NEW_OFFER["offer_id"])
    for c in world.customers:
        best_before = max(world.p_accept(c.customer_id, o, "card", "primary", 0) for o in cards)
        launched = world.p_accept(c.customer_id, NEW_OFFER["offer_id"], "card", "primary", 0)
        assert launched > best_before or launched == 0.95


def test_the_live_view_says_how_the_launched_offer_is_found() -> None:
    from rich.console import Console

    from pipeline.cli.app import _progress_table
    from pipeline.simulation.channel import NOTHING, Outcome, Truth
    from pipeline.simulation.demo import DemoReport

    report = DemoReport(seconds=1.0)
    best = Truth(0.5, 50.0)
    report.scoreboard.add(Outcome([], True, False, best, best, NOTHING, "card-01", "card-01"))
    report.scoreboard.launch("card-06")
    for shown in ("card-06", "card-01", "card-06", "card-06"):  # best each time: found 3 of 4
        report.scoreboard.add(Outcome([], True, False, best, best, NOTHING, shown, "card-06"))
    console = Console(width=120, record=True)
    console.print(_progress_table(report))
    text = console.export_text()
    assert "new offer card-06: first when best" in text and "75% of 4" in text
