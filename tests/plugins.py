"""What a data scientist's own module holds, chosen by settings as `tests.plugins:NAME`."""

import threading
from collections.abc import Mapping
from typing import Any

from river import linear_model, naive_bayes, optim, preprocessing

from features import Exposure, Moment, feature_set


@feature_set("segment-by-offer", version=1)
def segment_by_offer(
    customer: Mapping[str, Any], offer: Mapping[str, Any], moment: Moment, exposure: Exposure
) -> dict[str, float]:
    """Each offer's appeal per segment and tier (a customer attribute), and the channel."""
    tier = customer.get("attributes", {}).get("tier", "none")
    return {
        "bias": 1.0,
        f"segment={customer.get('segment')}×offer={offer['offer_id']}": 1.0,
        f"tier={tier}×offer={offer['offer_id']}": 1.0,
        f"channel={moment.channel}": 1.0,
        "impressions": min(exposure.impressions, 10) / 10,
    }


def not_a_feature_set(customer: Any, offer: Any, moment: Any, exposure: Any) -> dict[str, float]:
    return {}


def scaled_logistic() -> Any:
    """A River pipeline: scaling, then logistic regression. MaxAbsScaler, not StandardScaler:
    River's StandardScaler sees a one-hot feature only where it is present, always 1.0, so it
    scales every one-hot feature to 0."""
    return preprocessing.MaxAbsScaler() | linear_model.LogisticRegression(optimizer=optim.SGD(0.1))


# A River classifier other than logistic regression, for counts and one-hot features
multinomial_bayes = naive_bayes.MultinomialNB(alpha=1.0)


# How long `hangs_when_told` hangs: longer than any test waits, so the stall watch ends it
HANG_SECONDS = 600.0


@feature_set("hangs-when-told", version=1)
def hangs_when_told(
    customer: Mapping[str, Any], offer: Mapping[str, Any], moment: Moment, exposure: Exposure
) -> dict[str, float]:
    """`segment_by_offer`, except on an event whose attributes say `hang`: then it never
    returns, as feature code waiting on a service that does not answer would (a wedged loop)."""
    if moment.attributes.get("hang"):
        threading.Event().wait(HANG_SECONDS)
    return segment_by_offer.features(customer, offer, moment, exposure)
