"""Where the value lost to the best choice goes (the channel's regret decomposition), the
objective the ranker maximises, and the second simulated world."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.contracts.schemas import Customer, Offer
from pipeline.next_best_offer.state import CustomerDecisions, MemoryState
from pipeline.simulation.channel import Channel, RegretParts, Scoreboard
from pipeline.simulation.curves import CurvesWorld
from pipeline.simulation.households import HouseholdsWorld
from pipeline.simulation.worlds import WORLDS, make_world
from tests.factories import (
    START,
    candidate,
    catalogue_offer,
    decide,
    make_ranker_processor,
    offer,
    valid_offers,
)


class KnownWorld:
    """A world whose P(accept) is a table: (offer, phase) → p."""

    def __init__(self, table: dict[tuple[str, str], float]) -> None:
        self.table = table

    def p_accept(
        self,
        customer_id: str,
        offer_id: str,
        category: str,
        phase: str,
        unanswered: int,
        days_since_trigger: float | None = None,
    ) -> float:
        return self.table[offer_id, phase]


def catalogue(*offers: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["offer_id"]: Offer.model_validate(o).model_dump() for o in offers}


def shown(*offers: tuple[str, float, float, str]) -> dict[str, Any]:
    """A decision emitting (offer id, score, P(accept), phase), first shown."""
    return {
        "decision_id": "d-1",
        "customer_id": "C1",
        "channel": "web",
        "timestamp": START.isoformat(),
        "offers": [
            {"offer_id": oid, "score": score, "p_accept": p, "phase": phase}
            for oid, score, p, phase in offers
        ],
    }


def candidates(*given: tuple[str, float, int]) -> dict[str, Any]:
    """A valid_offers record: (offer id, days since trigger, impressions)."""
    return {
        "candidates": [
            {"offer_id": oid, "days_since_trigger": days, "impressions": seen,
             "unanswered_impressions": 0}
            for oid, days, seen in given
        ]
    }  # fmt: skip


OFFERS = catalogue(
    offer("card-a", value=100.0, max_impressions=3),
    offer("card-b", value=100.0),
    offer("loan-a", "loan", value=300.0),
    offer("loan-b", "loan", value=100.0, max_impressions=1),
)
TRUTH = {  # primary: days 0-5, secondary: 5-10 (tests.factories.offer)
    ("card-a", "primary"): 0.30,
    ("card-b", "primary"): 0.20,
    ("card-b", "secondary"): 0.25,
    ("loan-a", "secondary"): 0.10,
    ("loan-b", "primary"): 0.90,
}


def test_each_step_of_the_decision_path_takes_its_part_and_the_parts_add_up_to_the_loss() -> None:
    channel = Channel(KnownWorld(TRUTH), dict(OFFERS))
    valid = candidates(("card-a", 1, 0), ("card-b", 6, 0), ("loan-a", 7, 0), ("loan-b", 1, 1))
    # values: card-a 30, card-b 25, loan-a 30, loan-b 90 (but shown once already: not allowed)
    # the ranker: greedy by its score is card-b; by its P(accept) × value it is loan-a (0.2×300);
    # it explored and showed card-a
    decision = shown(("card-a", 1.0, 0.05, "primary"), ("card-b", 9.0, 0.15, "secondary"),
                     ("loan-a", 5.0, 0.20, "secondary"))  # fmt: skip
    outcome = channel.respond(valid, decision)
    parts = outcome.regret
    assert outcome.oracle_offer in ("card-a", "loan-a") and outcome.oracle.value == 30.0
    assert parts.contact_policy == pytest.approx(90.0 - 30.0)  # loan-b is at its limit
    assert parts.wrong_category + parts.wrong_offer == pytest.approx(0.0)  # loan-a is as good
    assert parts.time_weighting == pytest.approx(30.0 - 25.0)  # loan-a's value, card-b chosen
    assert parts.exploration == pytest.approx(25.0 - 30.0)  # exploring gained here
    assert parts.total == pytest.approx(90.0 - outcome.learned.value)


def test_a_wrong_category_and_a_wrong_offer_within_it_are_told_apart() -> None:
    channel = Channel(KnownWorld(TRUTH), dict(OFFERS))
    valid = candidates(("card-a", 1, 0), ("card-b", 1, 0), ("loan-a", 7, 0))
    # best: card-a (30); the model prefers card-b (same category), then loan-a (other)
    within = channel.respond(valid, shown(("card-b", 1.0, 0.5, "primary")))
    assert within.regret.wrong_offer == pytest.approx(30.0 - 20.0)
    assert within.regret.wrong_category == 0.0
    across = channel.respond(valid, shown(("loan-a", 1.0, 0.5, "secondary")))
    assert across.regret.wrong_category == pytest.approx(0.0)  # loan-a is worth 30 too
    worse = Channel(KnownWorld({**TRUTH, ("loan-a", "secondary"): 0.05}), dict(OFFERS))
    across = worse.respond(valid, shown(("loan-a", 1.0, 0.5, "secondary")))
    assert across.regret.wrong_category == pytest.approx(30.0 - 15.0)
    assert across.regret.wrong_offer == 0.0


def test_an_offer_the_time_weighting_left_out_of_the_decision_is_charged_to_it() -> None:
    channel = Channel(KnownWorld(TRUTH), dict(OFFERS))
    valid = candidates(("card-a", 1, 0), ("card-b", 1, 0), ("loan-a", 7, 0))
    # best: card-a (30), and the model's P(accept) × value says so too, but the time weighting
    # emitted card-b alone (20)
    decision = {**shown(("card-b", 1.0, 0.5, "primary")), "best_by_expected_value": "card-a"}
    parts = channel.respond(valid, decision).regret
    assert parts.time_weighting == pytest.approx(30.0 - 20.0)
    assert parts.wrong_category == parts.wrong_offer == 0.0
    # without the name, only the emitted offers tell what the model preferred
    del decision["best_by_expected_value"]
    parts = channel.respond(valid, decision).regret
    assert (parts.wrong_offer, parts.time_weighting) == (pytest.approx(10.0), 0.0)


def test_the_scoreboard_gives_each_parts_share_of_the_loss_over_its_window() -> None:
    channel = Channel(KnownWorld(TRUTH), dict(OFFERS))
    board = Scoreboard(window=2)
    valid = candidates(("card-a", 1, 0), ("card-b", 1, 0))
    for _ in range(3):
        board.add(channel.respond(valid, shown(("card-b", 1.0, 0.5, "primary"))))
    recent = board.recent()
    assert recent.decisions == 2
    assert recent.regret == RegretParts(wrong_offer=pytest.approx(10.0))
    assert recent.regret_shares()["wrong_offer"] == pytest.approx(1.0)
    assert sum(recent.regret_shares().values()) == pytest.approx(1.0)


def test_the_ranker_counts_the_interest_phase_once_unless_told_to_weigh_it(
    tmp_path: Path,
) -> None:
    # the same value; "late" is in its secondary period
    offers = [catalogue_offer("early"), catalogue_offer("late")]
    record = valid_offers(candidate("early", 1), candidate("late", 7))
    weighed = {}
    for objective in ("expected-value", "time-weighted"):
        ranker = make_ranker_processor(tmp_path / objective, offers, objective=objective)
        decision = decide(ranker, CustomerDecisions(MemoryState()), record)
        weighed[objective] = {o["offer_id"]: o["value_now"] for o in decision["offers"]}
    # what an acceptance earns: the value in both periods; the curve halves it in the second
    assert weighed["expected-value"] == {"early": 100.0, "late": 100.0}
    assert weighed["time-weighted"] == {"early": 100.0, "late": 50.0}


def test_the_value_curve_objective_counts_the_phase_once_by_the_curve(tmp_path: Path) -> None:
    offers = [catalogue_offer("early"), catalogue_offer("late")]
    record = valid_offers(candidate("early", 1), candidate("late", 7))  # "late": secondary
    decided = {}
    for objective in ("value-curve", "time-weighted"):
        ranker = make_ranker_processor(tmp_path / objective, offers, objective=objective)
        for _ in range(40):  # the model learns that the secondary period lowers P(accept)
            ranker.models.model.learn_one({"bias": 1.0, "phase=secondary": 1.0}, False)
        book = CustomerDecisions(MemoryState())
        decision = decide(ranker, book, record)
        pending = book.details(decision["decision_id"]).offers["late"].features
        assert pending["phase=secondary"] == 1.0  # learned from the phase it was shown in
        decided[objective] = {o["offer_id"]: o for o in decision["offers"]}
    once, twice = decided["value-curve"], decided["time-weighted"]
    # both tell the P(accept) of the moment, lower in the secondary period
    assert once["late"]["p_accept"] == twice["late"]["p_accept"] < once["early"]["p_accept"]
    # value-curve ranks by P(accept) in the primary period × value now (halved): the phase once
    assert once["late"]["score"] == pytest.approx(once["early"]["score"] / 2, rel=1e-4)
    assert twice["late"]["score"] < twice["early"]["score"] / 2 * 0.9


def test_the_households_world_is_seeded_and_its_records_are_valid() -> None:
    world = HouseholdsWorld(customers=200, seed=5)
    assert world.events(20) == HouseholdsWorld(customers=200, seed=5).events(20)
    offers = [Offer.model_validate(o) for o in world.offers()]
    assert len(offers) == 40 and len({o.category for o in offers}) == 6
    records = [Customer.model_validate(c) for c in world.customer_records()]
    assert {r.attributes["household"] for r in records} == {"single", "couple", "family"}
    assert any(r.products_held for r in records) and len({r.region for r in records}) == 5


def test_in_the_households_world_appeal_follows_income_region_household_and_holdings() -> None:
    world = HouseholdsWorld(customers=400, seed=5)
    people = world.customers
    for field in ("income_band", "region", "household", "products_held"):
        # two customers alike in everything but `field` like some offer differently
        pairs = [
            (a, b)
            for a in people
            for b in people
            if getattr(a, field) != getattr(b, field)
            and all(
                getattr(a, other) == getattr(b, other)
                for other in ("income_band", "region", "household", "products_held")
                if other != field
            )
        ]
        assert pairs, field
        a, b = pairs[0]
        assert any(
            world.appeal(a.customer_id, o["offer_id"]) != world.appeal(b.customer_id, o["offer_id"])
            for o in world.offers()
        ), field
    # and offers lose interest with time each in its own way
    secondary = {round(world.p_accept(people[0].customer_id, o["offer_id"], o["category"],
                                      "secondary", 0)
                       / world.p_accept(people[0].customer_id, o["offer_id"], o["category"],
                                        "primary", 0), 3)
                 for o in world.offers()}  # fmt: skip
    assert len(secondary) > 20


def test_worlds_are_chosen_by_name() -> None:
    assert set(WORLDS) == {"bank", "households", "curves"}
    assert isinstance(make_world("households", 5, 1), HouseholdsWorld)
    assert isinstance(make_world("curves", 5, 1), CurvesWorld)
    with pytest.raises(ValueError, match=r"unknown world 'mars'.*bank, households, curves"):
        make_world("mars", 5, 1)


def test_nbo_demo_refuses_a_world_it_does_not_know_before_starting_anything() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "demo", "--world", "mars", "--events", "10"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "unknown world 'mars': choose one of bank, households" in done.stdout + done.stderr


def test_a_short_demo_in_the_households_world_decides_learns_and_accounts_for_its_loss(
    make_settings: Any,
) -> None:
    from pipeline.simulation.demo import DemoConfig, run_demo

    settings = make_settings(model_publish_interval=0.5)
    config = DemoConfig(events=1000, batch=250, customers=200, seed=4, launch_at=None,
                        world="households")  # fmt: skip
    report = run_demo(settings, config)
    figures = report.figures()
    assert report.events == report.decisions == 1000 and figures.dead_letters == 0
    assert int(report.model_version.split("-")[1]) > 50  # the learner learned, in the loop
    recent = figures.recent
    assert 0 < recent.value_vs_oracle <= 1 and recent.random_acceptance > 0
    lost = recent.oracle_expected_value - recent.expected_value
    assert recent.regret.total == pytest.approx(lost + recent.regret.contact_policy)
    assert sum(recent.regret_shares().values()) == pytest.approx(1.0)


def test_in_the_curves_world_the_channel_answers_by_each_offers_true_curve() -> None:
    world = CurvesWorld(customers=30, seed=4)
    offers = {o["offer_id"]: Offer.model_validate(o).model_dump() for o in world.offers()}
    channel = Channel(world, offers, seed=1)
    customer = world.customers[0].customer_id

    def truth(kind: str, days: float | None) -> float:
        offer_id = next(o for o, c in world.curves.items() if c.kind == kind and o in offers)
        candidate = {"offer_id": offer_id, "days_since_trigger": days, "impressions": 0,
                     "unanswered_impressions": 0}  # fmt: skip
        primary = world.primary_acceptance(customer, offer_id, offers[offer_id]["category"])
        return channel._truth(customer, candidate).p_accept / min(primary, 0.95)

    assert truth("evergreen", None) == pytest.approx(1.0)  # no trigger needed
    assert truth("documented", None) == pytest.approx(0.12)
    short = next(o for o, c in world.curves.items() if c.kind == "short" and o in offers)
    late_in_primary = 0.75 * offers[short]["primary_interest_days"]  # documented: still primary
    assert truth("short", late_in_primary) == pytest.approx(0.5)  # truly: secondary already
    long_ = next(o for o, c in world.curves.items() if c.kind == "long" and o in offers)
    terms = offers[long_]
    past_secondary = 2 * terms["primary_interest_days"] + terms["secondary_interest_days"]
    assert past_secondary < terms["negative_impact_days"]  # documented: irrelevant, not negative
    assert truth("long", past_secondary) == pytest.approx(0.5)  # truly: secondary still
