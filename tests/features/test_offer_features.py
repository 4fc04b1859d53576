import collections
import copy
import pickle
import random
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from features import DEFAULT_FEATURES, Exposure, Moment, feature_set, make_feature_set
from features.feature_set import DecisionParts, Exposures, merged
from features.index import FeatureIndex
from models.ranker import make_ranker

customers = st.fixed_dictionaries(
    {
        "segment": st.sampled_from(["student", "mass", "private"]),
        "age": st.integers(0, 100),
        "products_held": st.lists(st.sampled_from(["card", "loan", "mortgage"]), max_size=3),
        "acquired": st.lists(st.sampled_from(["card", "loan"]), max_size=2),
    }
)
offers = st.fixed_dictionaries(
    {
        "offer_id": st.sampled_from(["o1", "o2", "o3"]),
        "category": st.sampled_from(["card", "loan", "mortgage"]),
        "value": st.floats(1, 1000),
    }
)
EXPOSURES_OF_ONE = Exposures(np.array([1.0]), ["primary"], np.array([0]), np.array([0]))
exposures = st.builds(
    Exposure,
    st.floats(0, 400) | st.none(),
    st.sampled_from(["primary", "secondary", "irrelevant"]),
    st.integers(0, 20),
    st.integers(0, 20),
)


@given(customers, offers, exposures)
def test_features_never_mutate_their_inputs(customer, offer, exposure) -> None:  # type: ignore[no-untyped-def]
    moment = Moment("travel_booking", "web", datetime(2026, 11, 7, 22, tzinfo=UTC))
    before = copy.deepcopy((customer, offer, moment))
    features = DEFAULT_FEATURES.features(customer, offer, moment, exposure)
    assert (customer, offer, moment) == before
    assert all(isinstance(v, float) for v in features.values())
    assert features["weekend"] == 1.0  # 2026-11-07 is a Saturday
    assert features[f"offer={offer['offer_id']}"] == 1.0
    category, acquired = offer["category"], customer["acquired"]
    held_by_crm = category in customer["products_held"] and category not in acquired
    assert ("holds_category" in features) == held_by_crm
    assert ("accepted_category" in features) == (category in acquired)
    assert ("log_days_since_trigger" in features) == (exposure.days_since_trigger is not None)


@given(customers, offers, exposures)
def test_decision_parts_are_the_candidate_features_split_in_blocks(  # type: ignore[no-untyped-def]
    customer, offer, exposure
) -> None:
    moment = Moment("salary_increase", "email", datetime(2026, 11, 9, 8, tzinfo=UTC))
    decision = DEFAULT_FEATURES.for_decision(customer, moment)
    blocks, own = decision.parts(offer, exposure)
    names = [name for part in (*blocks, own) for name in part]
    assert len(names) == len(set(names))  # no feature in two parts
    assert merged(blocks, own) == DEFAULT_FEATURES.features(customer, offer, moment, exposure)
    again, own_again = decision.parts(offer, exposure._replace(days_since_trigger=1.0))
    assert all(a is b for a, b in zip(again, blocks, strict=True))  # blocks built once
    assert own_again is not own


@given(st.lists(st.tuples(offers, exposures), min_size=1, max_size=6), customers)
def test_columns_are_the_candidates_features_as_numbers(rows, customer) -> None:  # type: ignore[no-untyped-def]
    moment = Moment("salary_increase", "email", datetime(2026, 11, 9, 8, tzinfo=UTC))
    assert_columns_equal_parts(DEFAULT_FEATURES.for_decision(customer, moment), rows)


def assert_columns_equal_parts(decision: DecisionParts, rows: list[tuple[dict, Exposure]]) -> None:  # type: ignore[type-arg]
    """Each candidate's columns, read back as names, are its features (a slot of value 0 is a
    feature it does not have, or has at 0)."""
    index = FeatureIndex()
    exposures = Exposures(
        np.array(
            [np.nan if e.days_since_trigger is None else e.days_since_trigger for _, e in rows]
        ),
        [e.phase for _, e in rows],
        np.array([e.impressions for _, e in rows]),
        np.array([e.unanswered for _, e in rows]),
    )
    columns = decision.columns([offer for offer, _ in rows], exposures, index)
    assert columns is not None
    for (offer, exposure), indices, values in zip(
        rows, columns.indices, columns.values, strict=True
    ):
        as_read = collections.Counter()
        for column, value in zip(indices.tolist(), values.tolist(), strict=True):
            as_read[index.names[column]] += value
        features = merged(*decision.parts(offer, exposure))
        assert {n: v for n, v in as_read.items() if v} == {n: v for n, v in features.items() if v}
        assert set(features) <= set(as_read)


def test_a_feature_function_is_a_feature_set_that_shares_nothing() -> None:
    @feature_set("tier", version=3)
    def tier(customer, offer, moment, exposure):  # type: ignore[no-untyped-def]
        return {f"tier={customer['attributes']['tier']}×{offer['offer_id']}": 1.0}

    moment = Moment("login", "web", datetime(2026, 11, 9, 8, tzinfo=UTC))
    decision = tier.for_decision({"attributes": {"tier": "gold"}}, moment)
    blocks, own = decision.parts({"offer_id": "o1"}, Exposure())
    assert (blocks, own) == ((), {"tier=gold×o1": 1.0})
    assert decision.columns([{"offer_id": "o1"}], EXPOSURES_OF_ONE, FeatureIndex()) is None
    assert tier.label == "tier/3"


def test_a_feature_set_is_chosen_by_name_or_import_reference() -> None:
    assert make_feature_set("default") is DEFAULT_FEATURES
    chosen = make_feature_set("tests.plugins:segment_by_offer")
    assert chosen.label == "segment-by-offer/1"
    with pytest.raises(ValueError, match="unknown feature set 'fancy'"):
        make_feature_set("fancy")
    with pytest.raises(ValueError, match="is not a FeatureSet"):
        make_feature_set("tests.plugins:not_a_feature_set")
    with pytest.raises(ValueError, match="cannot import"):
        make_feature_set("tests.nowhere:anything")


def test_a_feature_that_is_not_a_number_is_named() -> None:
    @feature_set("careless", version=1)
    def careless(customer, offer, moment, exposure):  # type: ignore[no-untyped-def]
        return {"bias": 1.0, "tier": customer["attributes"]["tier"]}

    moment = Moment("login", "web", datetime(2026, 11, 9, 8, tzinfo=UTC))
    with pytest.raises(ValueError, match="careless/1: feature 'tier' of offer 'o1' is 'gold'"):
        careless.features({"attributes": {"tier": "gold"}}, {"offer_id": "o1"}, moment, Exposure())


# One candidate whose exposure the tests below vary
LOGIN = Moment("login", "web", datetime(2026, 11, 9, 8, tzinfo=UTC))
CUSTOMER = {"segment": "mass", "age": 40, "products_held": []}
CARD = {"offer_id": "card-1", "category": "card"}


def test_the_default_model_learns_how_much_each_unanswered_impression_costs() -> None:
    # Each unanswered impression multiplies P(accept) by 0.7: a fatigue the size of the
    # simulated worlds'. The default model, given the default features, should learn about
    # that much from a few thousand labels, not a prior-shrunk fraction of it.
    rng = random.Random(5)
    model = make_ranker()  # the default model, with the default features

    def features(unanswered: int) -> dict[str, float]:
        exposure = Exposure(1.0, "primary", impressions=unanswered, unanswered=unanswered)
        return DEFAULT_FEATURES.features(CUSTOMER, CARD, LOGIN, exposure)

    for _ in range(4000):
        unanswered = rng.randrange(4)
        model.learn_one(features(unanswered), rng.random() < 0.3 * 0.7**unanswered)
    fresh, ignored_twice = (model.predict_proba_one(features(n))[True] for n in (0, 2))
    assert abs(fresh - 0.3) < 0.06  # about 1,000 labels without fatigue: 4 standard errors
    assert 0.4 < ignored_twice / fresh < 0.6  # 0.7² = 0.49


def test_a_model_pickled_before_version_5_is_fed_the_exposure_counts_it_learned() -> None:
    # Unpickled, a feature set keeps the version it was pickled with; its model's weights for
    # the exposure counts are per tenth up to default/4 (every-field/2, which holds a default)
    old_default = pickle.loads(pickle.dumps(DEFAULT_FEATURES))
    old_default.version = 4
    old_every_field = pickle.loads(pickle.dumps(make_feature_set("every-field")))
    old_every_field.version, old_every_field._default.version = 2, 4
    ignored_twice = Exposure(1.0, "primary", impressions=3, unanswered=2)
    read = [
        (features["impressions"], features["unanswered"])
        for feature_set_ in (DEFAULT_FEATURES, old_default, old_every_field)
        for features in [feature_set_.features(CUSTOMER, CARD, LOGIN, ignored_twice)]
    ]
    assert read == [(3.0, 2.0), (0.3, 0.2), (0.3, 0.2)]
    assert (old_default.label, old_every_field.label) == ("default/4", "every-field/2")
