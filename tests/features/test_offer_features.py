import copy
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from features.offer_features import (
    CustomerPart,
    DecisionContext,
    DecisionFeatures,
    candidate_features,
)

customers = st.fixed_dictionaries(
    {
        "segment": st.sampled_from(["student", "mass", "private"]),
        "age": st.integers(0, 100),
        "products_held": st.lists(st.sampled_from(["card", "loan", "mortgage"]), max_size=3),
    }
)
offers = st.fixed_dictionaries(
    {"category": st.sampled_from(["card", "loan", "mortgage"]), "value": st.floats(1, 1000)}
)


@given(customers, offers, st.floats(0, 400) | st.none(), st.integers(0, 20), st.integers(0, 20))
def test_features_never_mutate_their_inputs(customer, offer, days, impressions, unanswered) -> None:  # type: ignore[no-untyped-def]
    context = DecisionContext.at(datetime(2026, 11, 7, 22, tzinfo=UTC), "web", "travel_booking")
    before = copy.deepcopy((customer, offer, context))
    features = candidate_features(
        CustomerPart.of(customer),
        offer,
        context,
        days_since_trigger=days,
        phase="primary",
        impressions=impressions,
        unanswered=unanswered,
    )
    assert (customer, offer, context) == before
    assert all(isinstance(v, float) for v in features.values())
    assert features["weekend"] == 1.0  # 2026-11-07 is a Saturday
    assert ("holds_category" in features) == (offer["category"] in customer["products_held"])
    assert ("log_days_since_trigger" in features) == (days is not None)


@given(customers, offers, st.floats(0, 400) | st.none(), st.integers(0, 20), st.integers(0, 20))
def test_decision_parts_are_the_candidate_features_split_in_two(  # type: ignore[no-untyped-def]
    customer, offer, days, impressions, unanswered
) -> None:
    context = DecisionContext.at(datetime(2026, 11, 9, 8, tzinfo=UTC), "email", "salary_increase")
    part = CustomerPart.of(customer)
    decision = DecisionFeatures(part, context)
    shared, own = decision.parts(offer["category"], "secondary", days, impressions, unanswered)
    assert not shared.keys() & own.keys()
    assert {**shared, **own} == candidate_features(
        part,
        offer,
        context,
        days_since_trigger=days,
        phase="secondary",
        impressions=impressions,
        unanswered=unanswered,
    )
    again, own_again = decision.parts(offer["category"], "secondary", 1.0, 0, 0)
    assert again is shared  # one object per (category, phase) in a decision
    assert own_again is not own
