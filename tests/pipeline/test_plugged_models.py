"""A data scientist's own River model and feature set, chosen by settings: the stream, the replay
and the MLflow pyfunc score each candidate with the same P(accept)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from features import Exposure, Moment
from models.ranker import OnlineRanker
from pipeline.next_best_offer.state import CustomerDecisions, MemoryState
from pipeline.offline.logged import LogMapping, read_items
from pipeline.offline.replay import Replayer, replay_rows
from pipeline.review import registry
from pipeline.settings import Settings
from tests.factories import (
    SHORT_INTEREST,
    START,
    candidate,
    catalogue_offer,
    decide,
    make_ranker_processor,
    register,
    valid_offers,
)

FEATURES = "tests.plugins:segment_by_offer"
OFFERS = [
    catalogue_offer("card-1", **SHORT_INTEREST),
    catalogue_offer("loan-1", category="loan", **SHORT_INTEREST),
    catalogue_offer("ins-1", category="insurance", **SHORT_INTEREST),
]
GOLD = {"segment": "affluent", "age": 41, "products_held": ["card"], "attributes": {"tier": "gold"}}


def train(model: OnlineRanker) -> None:
    """Gold customers take the card, others the loan: learned through the model's own features."""
    rng = random.Random(3)
    moment = Moment("travel_booking", "web", START)
    for _ in range(400):
        tier = rng.choice(["gold", "silver"])
        customer = {
            **GOLD,
            "segment": rng.choice(["mass", "affluent"]),
            "attributes": {"tier": tier},
        }
        offer = rng.choice(OFFERS)
        exposure = Exposure(impressions=rng.randint(0, 3))
        x = model.features.features(customer, offer, moment, exposure)
        liked = "card-1" if tier == "gold" else "loan-1"
        model.learn_one(x, offer["offer_id"] == liked and rng.random() < 0.9)


def replayed_p_accept(model: OnlineRanker, offer_id: str, tmp_path: Path) -> float:
    """P(accept) the replay gives `offer_id` shown to the gold customer, before it learns."""
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps(o, default=str) + "\n" for o in OFFERS))
    mapping = LogMapping.model_validate({"context": {"attributes": ["tier"]}})
    row = {
        "timestamp": START.isoformat(),
        "offer_id": offer_id,
        "reward": 0,
        "propensity": 1 / 3,
        "segment": GOLD["segment"],
        "age": GOLD["age"],
        "products_held": "card",
        "channel": "web",
        "event_type": "travel_booking",
        "tier": "gold",
    }
    replayer = Replayer(read_items(items, mapping.items), mapping, model=model)
    result = replay_rows([(2, row)], replayer)
    assert not result.rejected and result.model.n_learned == model.n_learned + 1
    return result.rows[0].predicted_reward


@pytest.mark.parametrize(
    "model", ["tests.plugins:scaled_logistic", "tests.plugins:multinomial_bayes"]
)
def test_a_plugged_model_scores_alike_in_stream_replay_and_pyfunc(
    model: str, settings: Settings, tmp_path: Path
) -> None:
    ranker = make_ranker_processor(tmp_path, OFFERS, ranker_model=model, feature_set=FEATURES)
    champion = ranker.models.model
    assert champion.features.label == "segment-by-offer/1"
    train(champion)
    record = valid_offers(
        candidate("card-1", 1.0), candidate("loan-1", 1.0), candidate("ins-1", None)
    ).model_copy(update={"customer": GOLD})

    decision = decide(ranker, CustomerDecisions(MemoryState()), record)
    assert decision["feature_set"] == "segment-by-offer/1"
    assert decision["model_version"] == f"{model.partition(':')[2]}-400"
    in_stream = {o["offer_id"]: o["p_accept"] for o in decision["offers"]}
    assert len(set(in_stream.values())) == 3  # three cases, three different scores
    assert max(in_stream, key=in_stream.__getitem__) == "card-1"  # gold likes the card

    version = register(settings, champion)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{registry.REGISTERED_MODEL}/{version}")
    rows = pd.DataFrame(
        [
            {
                "segment": GOLD["segment"],
                "age": float(GOLD["age"]),
                "products_held": "card",
                "offer_id": offer_id,
                "category": next(o["category"] for o in OFFERS if o["offer_id"] == offer_id),
                "channel": "web",
                "event_type": "travel_booking",
                "timestamp": START.isoformat(),
                "customer_attributes": json.dumps(GOLD["attributes"]),
            }
            for offer_id in in_stream
        ]
    )
    by_pyfunc = dict(zip(in_stream, pyfunc.predict(rows), strict=True))
    assert {k: round(v, 6) for k, v in by_pyfunc.items()} == in_stream

    by_replay = {k: replayed_p_accept(champion, k, tmp_path) for k in in_stream}
    assert {k: round(v, 6) for k, v in by_replay.items()} == in_stream
    assert champion.n_learned == 400  # the replay learned on its own copy
