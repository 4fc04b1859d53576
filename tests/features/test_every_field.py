"""The every-field feature set: every customer field and attribute, without code."""

from __future__ import annotations

from datetime import UTC, datetime

from features import Exposure, Moment, make_feature_set
from features.every_field import EVERY_FIELD, indicators
from features.offer_features import DEFAULT_FEATURES
from tests.features.test_offer_features import assert_columns_equal_parts

MOMENT = Moment("travel_booking", "web", datetime(2026, 3, 2, 9, tzinfo=UTC))
PRIMARY = Exposure(1.0, "primary", 0, 0)
CUSTOMER = {
    "customer_id": "C1",
    "segment": "mass",
    "age": 34,
    "region": "north",
    "income": 45_000.0,
    "tenure_years": 3.0,
    "products_held": ["card", "savings"],
    "consents": ["web"],
    "attributes": {"household": "family", "vip": True},
}


def test_a_field_the_crm_adds_is_learned_from_without_code() -> None:
    found = indicators({**CUSTOMER, "attributes": {**CUSTOMER["attributes"], "pets": 2}})
    assert "pets~2" in found and "vip=true" in found and "household=family" in found
    assert {"products_held=card", "products_held=savings", "region=north"} <= set(found)
    assert not any(name.startswith(("customer_id", "segment", "consents")) for name in found)


def test_a_category_accepted_through_nbo_is_told_apart_from_the_crms_products() -> None:
    customer = {**CUSTOMER, "products_held": ["card", "savings", "loan"], "acquired": ["loan"]}
    found = indicators(customer)
    assert "acquired=loan" in found and "products_held=loan" not in found
    assert {"products_held=card", "products_held=savings"} <= set(found)
    offer = {"offer_id": "loan-1", "category": "loan"}
    loan = EVERY_FIELD.features(customer, offer, MOMENT, PRIMARY)
    assert loan["acquired=loan×offer=loan-1"] == loan["accepted_category"] == 1.0
    assert "products_held=loan×offer=loan-1" not in loan and "holds_category" not in loan


def test_numbers_fall_in_log_bands_that_tell_income_levels_apart() -> None:
    def band(income: float) -> str:
        return next(i for i in indicators({"income": income}))

    assert band(20_000) != band(45_000) != band(120_000)
    assert band(40_000) == band(44_000)


def test_it_adds_crosses_with_offer_and_category_to_the_default_features() -> None:
    card = {"offer_id": "card-2", "category": "card"}
    every = EVERY_FIELD.features(CUSTOMER, card, MOMENT, PRIMARY)
    default = DEFAULT_FEATURES.features(CUSTOMER, card, MOMENT, PRIMARY)
    assert default.items() <= every.items()
    added = set(every) - set(default)
    assert added == {f"{i}×{x}" for i in indicators(CUSTOMER)
                     for x in ("offer=card-2", "category=card")}  # fmt: skip
    assert make_feature_set("every-field") is EVERY_FIELD


def test_candidates_of_a_category_share_its_crosses() -> None:
    decision = EVERY_FIELD.for_decision(CUSTOMER, MOMENT)
    blocks_1, own_1 = decision.parts({"offer_id": "card-1", "category": "card"}, PRIMARY)
    blocks_2, own_2 = decision.parts({"offer_id": "card-2", "category": "card"}, PRIMARY)
    assert blocks_1[-1] is blocks_2[-1] and "region=north×category=card" in blocks_1[-1]
    assert "region=north×offer=card-1" in own_1 and "region=north×offer=card-2" in own_2


def test_columns_are_the_candidates_features_as_numbers() -> None:
    rows = [
        ({"offer_id": "card-1", "category": "card"}, PRIMARY),
        ({"offer_id": "loan-1", "category": "loan"}, Exposure(None, "irrelevant", 3, 2)),
        ({"offer_id": "card-2", "category": "card"}, Exposure(9.0, "secondary", 1, 0)),
    ]
    customer = {**CUSTOMER, "acquired": ["loan"], "products_held": ["card", "loan"]}
    assert_columns_equal_parts(EVERY_FIELD.for_decision(customer, MOMENT), rows)
