import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from pipeline.contracts.schemas import (
    ALL_SCHEMAS,
    Customer,
    JourneyEvent,
    Offer,
    export_json_schemas,
)
from tests.factories import offer


def _offer(**fields: object) -> dict[str, object]:
    """An offers row as a CSV file gives it: channels as one pipe-separated field."""
    travel_card = {
        "name": "Travel Card",
        "value": 120.0,
        "primary_interest_days": 2,
        "secondary_interest_days": 7,
        "negative_impact_days": 21,
        "channels": "web|mobile_app",
    }
    return offer("card-01", **{**travel_card, **fields})


def test_offer_reads_pipes_dates_and_defaults() -> None:
    offer = Offer.model_validate(_offer())
    assert offer.channels == ["web", "mobile_app"]
    assert offer.valid_from == datetime(2026, 1, 1, tzinfo=UTC)
    assert offer.schema_version == 1
    assert offer.business_lever == 1.0


def test_negative_impact_inside_interest_periods_is_rejected() -> None:
    with pytest.raises(ValidationError, match="negative_impact_days"):
        Offer.model_validate(_offer(negative_impact_days=5))


def test_unknown_field_and_unknown_enum_are_rejected() -> None:
    with pytest.raises(ValidationError, match="extra_forbidden"):
        Offer.model_validate(_offer(colour="red"))
    with pytest.raises(ValidationError, match="category"):
        Offer.model_validate(_offer(category="crypto"))


def test_naive_timestamps_are_utc() -> None:
    event = JourneyEvent.model_validate(
        {
            "event_id": "e",
            "customer_id": "c",
            "event_type": "app_login",
            "timestamp": "2026-05-01T12:00:00",
            "channel": "web",
        }
    )
    assert event.timestamp.tzinfo is UTC


def test_customer_rejects_impossible_age() -> None:
    with pytest.raises(ValidationError, match="age"):
        Customer.model_validate(
            {
                "customer_id": "c",
                "age": 200,
                "segment": "mass",
                "region": "north",
                "income": 1,
                "tenure_years": 1,
                "updated_at": "2026-01-01",
            }
        )


def test_export_writes_a_json_schema_per_record(tmp_path: Path) -> None:
    paths = export_json_schemas(tmp_path)
    assert {p.name for p in paths} == {f"{name}.schema.json" for name in ALL_SCHEMAS}
    offer_schema = json.loads((tmp_path / "offer.schema.json").read_text())
    assert "primary_interest_days" in offer_schema["required"]
    assert offer_schema["additionalProperties"] is False


def test_attributes_are_a_map_of_scalars_written_as_json_in_csv(tmp_path: Path) -> None:
    """Offers, customers and events carry free-form attributes for feature sets: a JSON object
    in a CSV cell, names to scalars; anything nested is refused with the field's name."""
    from_csv = Offer.model_validate(_offer(attributes='{"brand": "gold", "fee": 0, "new": true}'))
    assert from_csv.attributes == {"brand": "gold", "fee": 0, "new": True}
    assert Offer.model_validate(_offer(attributes="")).attributes == {}
    assert Offer.model_validate(_offer()).attributes == {}
    with pytest.raises(ValidationError, match="attributes"):
        Offer.model_validate(_offer(attributes='{"nested": {"no": 1}}'))
    with pytest.raises(ValidationError, match="not a JSON object"):
        Offer.model_validate(_offer(attributes="brand=gold"))

    export_json_schemas(tmp_path)
    for record in ("offer", "customer", "journey_event"):
        schema = json.loads((tmp_path / f"{record}.schema.json").read_text())
        attributes = schema["properties"]["attributes"]
        scalars = {kind["type"] for kind in attributes["additionalProperties"]["anyOf"]}
        assert attributes["type"] == "object" and scalars == {
            "string",
            "number",
            "integer",
            "boolean",
        }
