"""Every record the two μ-products emit validates against the JSON Schema `nbo schema export`
publishes for its topic: what consumers of nbo's topics are told is what they get."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from pipeline.contracts.schemas import ALL_SCHEMAS, export_json_schemas
from pipeline.contracts.topics import spec
from pipeline.settings import Settings
from tests.factories import START, customer, event, interaction, with_offers
from tests.streams import outputs, running, send

PEOPLE = [f"J{i:02d}" for i in range(12)]


def validators(directory: Path) -> dict[str, Draft202012Validator]:
    """Logical topic → a validator of the schema exported for the topic's records."""
    exported = {path.name: path for path in export_json_schemas(directory)}
    by_model = {model: name for name, model in ALL_SCHEMAS.items()}
    found = {}
    for topic in ("valid_offers", "next_best_offers", "feedback", "dead_letter"):
        path = exported[f"{by_model[spec(topic).schema]}.schema.json"]
        found[topic] = Draft202012Validator(json.loads(path.read_text()))
    return found


def errors(validator: Draft202012Validator, record: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(record)
    ]


def test_every_emitted_record_validates_against_its_exported_schema(
    make_settings, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    settings: Settings = with_offers(make_settings(exploration="epsilon-greedy", top_k=3))
    send(settings, "customers", [(c, customer(c, "affluent")) for c in PEOPLE])
    with running(settings, "run", "valid-offers"), running(settings, "run", "ranker"):
        send(settings, "events", [(c, event(f"e-{c}", c, START)) for c in PEOPLE])
        decisions = outputs(settings, "next_best_offers", len(PEOPLE))
        later = START + timedelta(minutes=3)
        for decision in decisions:
            first = decision["offers"][0]["offer_id"]
            c, d = decision["customer_id"], decision["decision_id"]
            send(settings, "interactions", [interaction(d, c, first, "impression", later)])
            send(settings, "interactions", [interaction(d, c, first, "accept", later)])
        # two bad records: an event that fails its schema, and a label for no decision
        send(settings, "events", [("J00", {"event_id": "broken", "customer_id": "J00"})])
        send(settings, "interactions", [interaction("d-none", "J01", "offer-a", "accept", later)])
        again = START + timedelta(hours=1)
        send(settings, "events", [(c, event(f"e2-{c}", c, again)) for c in PEOPLE])
        emitted = {
            "valid_offers": outputs(settings, "valid_offers", 2 * len(PEOPLE)),
            "next_best_offers": outputs(settings, "next_best_offers", 2 * len(PEOPLE)),
            "feedback": outputs(settings, "feedback", len(PEOPLE)),
            "dead_letter": outputs(settings, "dead_letter", 2),
        }
    check = validators(tmp_path / "schemas")
    for topic, records in emitted.items():
        for record in records:
            assert errors(check[topic], record) == [], f"{topic}: {record}"
    accepted = {(f["decision_id"], f["offer_id"]) for f in emitted["feedback"] if f["label"]}
    firsts = {(d["decision_id"], d["offers"][0]["offer_id"]) for d in decisions}
    assert accepted == firsts  # one feedback record per accepted offer, naming it
    reasons = sorted(letter["stage"] for letter in emitted["dead_letter"])
    assert reasons == ["ranker", "valid-offers"]  # each μ-product names itself
