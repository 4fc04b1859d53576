"""The contact policy and the time value of a whole record at once are, candidate by candidate,
what `models.time_value` says of each offer."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features import Moment
from features.offer_features import DEFAULT_FEATURES
from models.contact_policy import ContactPolicy
from models.time_value import OBJECTIVES, Objective, TimeValueProfile, earned_now, value_now
from pipeline.next_best_offer.offers_now import OffersNow
from tests.factories import START, candidate, catalogue_offer, valid_offers

OFFERS = [
    catalogue_offer("short", primary_interest_days=2.0, secondary_interest_days=5.0,
                    negative_impact_days=10.0, max_impressions=3),
    catalogue_offer("long", "loan", primary_interest_days=20.0, secondary_interest_days=40.0,
                    negative_impact_days=90.0, secondary_value_ratio=0.3),
    catalogue_offer("lever", "savings", business_lever=2.5, value=40.0),
]  # fmt: skip
CATALOGUE = SimpleNamespace(catalogue=SimpleNamespace(offers={o["offer_id"]: o for o in OFFERS}))
PARTS = DEFAULT_FEATURES.for_decision({}, Moment("travel_booking", "web", START))

candidates = st.lists(
    st.tuples(
        st.sampled_from(["short", "long", "lever", "gone"]),  # "gone": not in the catalogue
        st.floats(-2, 120) | st.none(),
        st.integers(0, 6),
        st.integers(0, 6),
    ),
    max_size=12,
)


@settings(max_examples=200)
@given(candidates, st.sampled_from(OBJECTIVES), st.sampled_from([0.0, 0.1]))
def test_each_offer_is_kept_and_valued_as_the_time_value_says(
    rows: list[tuple[str, float | None, int, int]], objective: Objective, irrelevant: float
) -> None:
    contact = ContactPolicy(fatigue_share=0.25)
    record = valid_offers(*(candidate(o, d, i, u) for o, d, i, u in rows))
    showable = OffersNow(CATALOGUE, contact, objective, irrelevant).of(record, PARTS)  # type: ignore[arg-type]
    expected = []
    for offer_id, days, impressions, unanswered in rows:
        offer = CATALOGUE.catalogue.offers.get(offer_id)
        if offer is None or impressions >= contact.max_impressions(offer):
            continue
        profile = TimeValueProfile.of(offer, irrelevant)
        _, phase = value_now(profile, days, unanswered, contact.fatigue_share)
        value = earned_now(profile, phase, objective)
        if value > 0:
            worth = earned_now(profile, phase, "expected-value") * offer["business_lever"]
            expected.append((offer_id, phase, value, offer["business_lever"], worth))
    offers = showable.offers
    assert offers.keys == [key for key, *_ in expected]
    assert list(offers.exposures.phase) == [phase for _, phase, *_ in expected]
    assert offers.value_now.tolist() == pytest.approx([value for *_, value, _, _ in expected])
    assert offers.lever.tolist() == pytest.approx([lever for *_, lever, _ in expected])
    assert showable.expected_worth.tolist() == pytest.approx([w for *_, w in expected])
    assert showable.suppressed == len(rows) - len(expected)
