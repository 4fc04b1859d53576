"""The Valid Offers μ-product as a real process on the embedded broker."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline.connectors import load as connectors
from pipeline.contracts.schemas import Customer, JourneyEvent, Offer
from pipeline.contracts.topics import create_topics
from pipeline.settings import Settings
from tests.streams import output_for, outputs, running, send

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"


@pytest.fixture
def catalogue_loaded(settings: Settings) -> Settings:
    create_topics(settings, settings.broker_address or "")
    for source, name in (
        ("offers", "offers.csv"),
        ("customers", "customers.csv"),
        ("rules", "rules.yaml"),
    ):
        connectors.load_file(settings, settings.broker_address or "", source, SAMPLE / name)
    return settings


@pytest.fixture
def app(catalogue_loaded: Settings) -> Iterator[Settings]:
    with running(catalogue_loaded, "run", "valid-offers"):
        yield catalogue_loaded


def sample(source: str, name: str) -> list[Any]:
    return [record for _, record in connectors.parse_source(source, SAMPLE / name).records]


def oracle_failures(
    offer: Offer, customer: Customer, event: JourneyEvent, complaint_at: datetime | None
) -> set[str]:
    """The sample rules, written again in plain Python: the rule ids that exclude `offer`."""
    now, channel = event.timestamp, event.channel
    held = set(customer.products_held)
    checks = {
        "offer-in-validity-period": offer.valid_from <= now <= offer.valid_to,
        "offer-on-event-channel": channel in offer.channels,
        "offer-in-stock": offer.stock is None or offer.stock > 0,
        "adult": customer.age >= 18,
        "channel-consent": channel == "branch" or channel in customer.consents,
        "not-already-held": offer.category not in {"mortgage", "savings"}
        or offer.category not in held,
        "mortgage-affordability": offer.category != "mortgage"
        or (customer.income >= 30000 and customer.age <= 65),
        "loan-affordability": offer.category != "loan" or customer.income >= 12000,
        "student-products": offer.offer_id not in {"loan-04", "card-03"}
        or customer.segment == "student",
        "investment-segments": offer.offer_id not in {"investment-03", "investment-05"}
        or customer.segment in {"affluent", "private"},
        "complaint-cool-off": complaint_at is None
        or (now - complaint_at).total_seconds() / 86400 > 30,
        "senior-no-long-loans": offer.offer_id != "loan-03" or customer.age <= 75,
    }
    return {rule_id for rule_id, holds in checks.items() if not holds}


def test_sample_events_get_exactly_the_offers_the_rules_allow(app: Settings) -> None:
    events = sample("events", "events.jsonl")[:300]
    send(app, "events", [(e.customer_id, e.model_dump(mode="json")) for e in events])
    decided = {value["event_id"]: value for value in outputs(app, "valid_offers", len(events))}
    assert set(decided) == {e.event_id for e in events}

    offers = {o.offer_id: o for o in sample("offers", "offers.csv")}
    customers = {c.customer_id: c for c in sample("customers", "customers.csv")}
    last_complaint: dict[str, datetime] = {}
    for event in events:
        if event.event_type == "complaint":
            last_complaint[event.customer_id] = event.timestamp
        output = decided[event.event_id]
        customer = customers[event.customer_id]
        expected_valid = {
            oid
            for oid, offer in offers.items()
            if not oracle_failures(offer, customer, event, last_complaint.get(event.customer_id))
        }
        assert {c["offer_id"] for c in output["candidates"]} == expected_valid, event.event_id
        complaint_at = last_complaint.get(event.customer_id)
        for exclusion in output["excluded"]:
            for offer_id in exclusion["offer_ids"]:
                failures = oracle_failures(offers[offer_id], customer, event, complaint_at)
                assert exclusion["rule_id"] in failures, (event.event_id, offer_id)
        assert output["rule_versions"]["adult"] == 1 and len(output["rule_versions"]) == 12
        assert output["customer"]["age"] == customer.age


def _event(
    event_id: str,
    customer_id: str,
    at: datetime,
    event_type: str = "travel_booking",
    channel: str = "branch",
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "customer_id": customer_id,
        "event_type": event_type,
        "timestamp": at.isoformat(),
        "channel": channel,
    }


def _profile(customer_id: str, age: int, **extra: Any) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "age": age,
        "segment": "mass",
        "region": "north",
        "income": 50000.0,
        "tenure_years": 2.0,
        "consents": ["branch", "web"],
        "updated_at": "2026-11-01T00:00:00Z",
        **extra,
    }


def test_a_profile_update_just_before_an_event_is_used(app: Settings) -> None:
    at = datetime.fromisoformat("2026-11-03T10:00:00+00:00")
    # profile, event, new profile, event: alternating topics, for one customer
    send(app, "customers", [("NEW1", _profile("NEW1", 17))])
    send(app, "events", [("NEW1", _event("x1", "NEW1", at))])
    send(app, "customers", [("NEW1", _profile("NEW1", 35))])
    send(app, "events", [("NEW1", _event("x2", "NEW1", at + timedelta(seconds=1)))])
    decided = {v["event_id"]: v for v in outputs(app, "valid_offers", 2)}
    assert decided["x1"]["customer"]["age"] == 17
    assert decided["x1"]["candidates"] == []
    assert {e["rule_id"] for e in decided["x1"]["excluded"]} >= {"adult"}
    assert decided["x2"]["customer"]["age"] == 35
    assert len(decided["x2"]["candidates"]) > 5


def test_unknown_customer_gets_the_default_profile_and_interactions_update_state(
    app: Settings,
) -> None:
    at = datetime.fromisoformat("2026-11-03T10:00:00+00:00")
    send(app, "events", [("GHOST", _event("g1", "GHOST", at))])
    send(app, "customers", [("C2", _profile("C2", 40, products_held=[]))])
    send(
        app,
        "interactions",
        [
            (
                "C2",
                {
                    "interaction_id": "i1",
                    "decision_id": "d1",
                    "customer_id": "C2",
                    "offer_id": "card-01",
                    "channel": "branch",
                    "outcome": "impression",
                    "timestamp": at.isoformat(),
                },
            ),
            (
                "C2",
                {
                    "interaction_id": "i2",
                    "decision_id": "d1",
                    "customer_id": "C2",
                    "offer_id": "mortgage-01",
                    "channel": "branch",
                    "outcome": "accept",
                    "timestamp": at.isoformat(),
                },
            ),
        ],
    )
    send(app, "events", [("C2", _event("c2", "C2", at + timedelta(hours=1), "property_search"))])
    decided = {v["event_id"]: v for v in outputs(app, "valid_offers", 2)}
    ghost = decided["g1"]
    assert ghost["customer"]["known"] is False and ghost["candidates"] == []
    after = decided["c2"]
    assert "mortgage" in after["customer"]["products_held"]
    assert after["customer"]["acquired"] == ["mortgage"]  # accepted, not the CRM's
    assert not any(c["offer_id"].startswith("mortgage-") for c in after["candidates"])
    card = next(c for c in after["candidates"] if c["offer_id"] == "card-01")
    assert (card["impressions"], card["unanswered_impressions"]) == (1, 1)
    insurance = next(c for c in after["candidates"] if c["offer_id"] == "insurance-02")
    assert insurance["days_since_trigger"] == 0.0  # triggered by this very event


def test_an_eligibility_change_applies_from_the_moment_it_arrives(app: Settings) -> None:
    at = datetime.fromisoformat("2026-11-03T10:00:00+00:00")
    mass = [f"M{i}" for i in range(10)]
    send(app, "customers", [(c, _profile(c, 30)) for c in mass])
    send(app, "events", [(c, _event(f"a-{c}", c, at)) for c in mass])
    before = outputs(app, "valid_offers", len(mass))
    assert all(v["rule_versions"]["student-products"] == 1 for v in before)
    assert all(
        any(
            "card-03" in e["offer_ids"] and e["rule_id"] == "student-products"
            for e in v["excluded"]
        )
        for v in before
    )

    new_version = {
        "rule_id": "student-products",
        "version": 2,
        "kind": "eligibility",
        "condition": 'customer.segment in ["student", "mass"]',
        "offer_ids": ["loan-04", "card-03"],
    }
    send(app, "eligibilities", [("student-products", new_version)])
    seen = len(mass)
    for probe in range(40):  # bounded: the table reader applies it within a few probes
        send(
            app,
            "events",
            [("M0", _event(f"probe-{probe}", "M0", at + timedelta(minutes=probe + 1)))],
        )
        seen += 1
        probed = output_for(app, "valid_offers", seen, f"probe-{probe}")
        if probed["rule_versions"]["student-products"] == 2:
            break
    else:
        pytest.fail("the new rule version was not applied")

    send(app, "events", [(c, _event(f"b-{c}", c, at + timedelta(hours=2))) for c in mass])
    after = [
        v for v in outputs(app, "valid_offers", seen + len(mass)) if v["event_id"].startswith("b-")
    ]
    assert len(after) == len(mass)
    assert all(v["rule_versions"]["student-products"] == 2 for v in after)
    assert all(any(c["offer_id"] == "card-03" for c in v["candidates"]) for v in after)
    # from the moment it applied, never the old version again: M0's outputs, in order (one key,
    # one partition), are a run of 1s, then only 2s
    in_order = [
        v["rule_versions"]["student-products"]
        for v in outputs(app, "valid_offers", seen + len(mass))
        if v["customer_id"] == "M0"
    ]
    switch = in_order.index(2)
    assert set(in_order[:switch]) == {1} and set(in_order[switch:]) == {2}


def test_bad_records_go_to_the_dead_letter_topic_and_processing_goes_on(app: Settings) -> None:
    at = datetime.fromisoformat("2026-11-03T10:00:00+00:00")
    send(app, "events", [("C00001", b"{not json")])
    send(app, "events", [("C00001", {"event_id": "e-missing", "customer_id": "C00001"})])
    send(app, "customers", [("C00002", {**_profile("C00002", 30), "segment": "royalty"})])
    send(app, "customers", [("WRONGKEY", _profile("C00003", 30))])
    send(
        app,
        "interactions",
        [
            (
                "C00001",
                {
                    "interaction_id": "i9",
                    "decision_id": "d",
                    "customer_id": "C00001",
                    "offer_id": "no-such-offer",
                    "channel": "web",
                    "outcome": "click",
                    "timestamp": at.isoformat(),
                },
            )
        ],
    )
    send(
        app,
        "eligibilities",
        [
            (
                "broken",
                {
                    "rule_id": "broken",
                    "version": 1,
                    "kind": "eligibility",
                    "condition": "customer.age >=",
                },
            )
        ],
    )
    send(
        app,
        "events",
        [("C00001", _event("good-1", "C00001", at)), ("C00002", _event("good-2", "C00002", at))],
    )

    dead = outputs(app, "dead_letter", 6)
    reasons = {d["source_topic"].split(".")[-1] + ":" + d["reason"] for d in dead}
    assert any(r.startswith("events:invalid events: (record): Invalid JSON") for r in reasons), (
        reasons
    )
    assert any(
        r.startswith("events:invalid events: event_type: Field required") for r in reasons
    ), reasons
    assert any(
        r.startswith("customers:invalid customers: segment: Input should be") for r in reasons
    )
    assert any("message key 'WRONGKEY' differs from customer_id 'C00003'" in r for r in reasons)
    assert any("unknown offer id no-such-offer" in r for r in reasons)
    assert any(r.startswith("eligibilities:rule broken v1: does not compile") for r in reasons)
    for letter in dead:
        assert letter["offset"] is not None and letter["partition"] is not None and letter["value"]
    good = {v["event_id"] for v in outputs(app, "valid_offers", 2)}
    assert good == {"good-1", "good-2"}
