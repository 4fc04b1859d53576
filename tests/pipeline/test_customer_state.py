from pipeline.valid_offers import state as cs

DAY = 86400.0


def test_event_history_is_bounded_and_tracks_last_seen() -> None:
    state = cs.new_state()
    for step in range(cs.RECENT_EVENTS + 15):
        cs.apply_event(state, f"type{step % 3}", step * 10.0)
    assert len(state["recent"]) == cs.RECENT_EVENTS
    assert max(state["last_seen"].values()) == (cs.RECENT_EVENTS + 14) * 10.0
    assert cs.trigger_time(state, ["type1", "type2", "absent"]) == max(
        state["last_seen"]["type1"], state["last_seen"]["type2"]
    )
    assert cs.trigger_time(state, ["absent"]) is None
    now = state["last_seen"]["type1"] + 1.5 * DAY
    assert cs.days_since_trigger(state, ["type1"], now) == 1.5
    assert cs.days_since_trigger(state, ["absent"], now) is None


def test_contacts_count_window_and_unanswered_until_a_response() -> None:
    state = cs.new_state()
    for day in (0, 10, 20):
        cs.apply_interaction(state, "o1", "card", "impression", day * DAY)
    assert cs.contact_counts(state, "o1", now=21 * DAY, window_days=15) == (2, 3)
    cs.apply_interaction(state, "o1", "card", "dismiss", 21 * DAY)
    assert cs.contact_counts(state, "o1", now=21 * DAY, window_days=30) == (3, 0)
    for step in range(cs.IMPRESSIONS_KEPT + 10):
        cs.apply_interaction(state, "o1", "card", "impression", 22 * DAY + step)
    assert len(state["contacts"]["o1"]["shown"]) == cs.IMPRESSIONS_KEPT


def test_accepting_an_offer_adds_its_category_to_products_held_and_to_acquired() -> None:
    state = cs.new_state()
    cs.apply_profile(state, {**cs.DEFAULT_PROFILE, "age": 30, "products_held": ["card"]})
    cs.apply_interaction(state, "m1", "mortgage", "accept", 1.0)
    cs.apply_interaction(state, "c1", "card", "convert", 2.0)
    cs.apply_interaction(state, "l1", "loan", "dismiss", 3.0)
    view = cs.customer_view(state, "C1")
    assert view["products_held"] == ["card", "mortgage"]  # what rules read as held
    assert view["acquired"] == ["mortgage"]  # the card was the CRM's already
    assert view["known"] is True and view["customer_id"] == "C1"
    cs.apply_profile(state, {**cs.DEFAULT_PROFILE, "products_held": ["card", "mortgage"]})
    assert cs.customer_view(state, "C1")["acquired"] == []  # the CRM has caught up


def test_unknown_customer_gets_the_documented_default() -> None:
    view = cs.customer_view(cs.new_state(), "C9")
    assert view["known"] is False and view["age"] == 0 and view["consents"] == []
