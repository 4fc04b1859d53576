from hypothesis import given
from hypothesis import strategies as st

from models.time_value import TimeValueProfile, value_now

PROFILE = TimeValueProfile(
    value=200,
    primary_interest_days=3,
    secondary_interest_days=7,
    negative_impact_days=20,
    secondary_value_ratio=0.4,
    negative_value_ratio=-0.25,
)


def test_value_follows_the_curve() -> None:
    assert value_now(PROFILE, 0.0) == (200.0, "primary")
    assert value_now(PROFILE, 2.99) == (200.0, "primary")
    assert value_now(PROFILE, 3.0) == (80.0, "secondary")
    assert value_now(PROFILE, 12.0) == (0.0, "irrelevant")
    assert value_now(PROFILE, 20.0) == (-50.0, "negative")


def test_unanswered_impressions_push_towards_negative_impact() -> None:
    fresh = value_now(PROFILE, 1.0, unanswered_impressions=0)
    tired = value_now(PROFILE, 1.0, unanswered_impressions=1)  # + 5 days
    annoyed = value_now(PROFILE, 1.0, unanswered_impressions=4)
    assert fresh[1] == "primary" and tired[1] == "secondary" and annoyed[1] == "negative"
    assert value_now(PROFILE, None, unanswered_impressions=4)[1] == "negative"


@given(days=st.floats(0, 100), ignored=st.integers(0, 10))
def test_more_fatigue_never_increases_value(days: float, ignored: int) -> None:
    less = value_now(PROFILE, days, ignored)[0]
    more = value_now(PROFILE, days, ignored + 1)[0]
    assert more <= less
