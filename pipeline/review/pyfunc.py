"""The pyfunc a ranker model is in MLflow: one row per candidate offer in, P(accept) out.

A row holds the raw records a feature set reads (see `INPUT_EXAMPLE` and `records_of_row`); the
model's own feature set, which travels with it, builds the features, so a reviewer scores
hand-made cases without knowing the feature encoding, and a model learned with a data
scientist's feature set is scored with it.

This module is pickled by value into each logged model (`registry.log_ranker`), so a model
loads where `models/` and `features/` (its code paths) are importable, without the rest of nbo.
"""

from __future__ import annotations

import json
import math
import pickle
from collections.abc import Mapping
from typing import Any

import pandas as pd
from mlflow.pyfunc.model import PythonModel
from mlflow.types.schema import ColSpec, Schema

from features import Exposure, Moment
from features.values import parse_time, split_list
from models.ranker import OnlineRanker

INPUT_EXAMPLE = pd.DataFrame(
    [
        {
            "segment": "mass",
            "age": 34.0,
            "products_held": "card|savings",
            "offer_id": "ins-travel",
            "category": "insurance",
            "channel": "web",
            "event_type": "travel_booking",
            "timestamp": "2026-03-02T09:00:00+00:00",
            "days_since_trigger": 0.5,
            "phase": "primary",
            "impressions": 0.0,
            "unanswered": 0.0,
        }
    ]
)
# Each column of a row and where it goes; `*_attributes` are JSON objects (text), the records'
# free-form attributes that a feature set may read.
INPUT_SCHEMA = Schema(
    [
        ColSpec("string", "segment"),
        ColSpec("double", "age"),
        ColSpec("string", "products_held", required=False),  # a|b|c
        ColSpec("string", "acquired", required=False),  # a|b: of those, accepted through nbo
        ColSpec("string", "offer_id"),
        ColSpec("string", "category"),
        ColSpec("double", "value", required=False),
        ColSpec("string", "channel"),
        ColSpec("string", "event_type"),
        ColSpec("string", "timestamp"),  # ISO 8601; UTC when it names no zone
        ColSpec("double", "days_since_trigger", required=False),  # empty: no trigger seen
        ColSpec("string", "phase", required=False),
        ColSpec("double", "impressions", required=False),
        ColSpec("double", "unanswered", required=False),
        ColSpec("string", "customer_attributes", required=False),
        ColSpec("string", "offer_attributes", required=False),
        ColSpec("string", "event_attributes", required=False),
    ]
)


def records_of_row(
    row: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], Moment, Exposure]:
    """(customer, offer, moment, exposure) of one pyfunc input row; an empty cell is absent."""
    given = {
        k: v
        for k, v in row.items()
        if v is not None and not (isinstance(v, float) and math.isnan(v))
    }

    def attributes(column: str) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(given[column]) if given.get(column) else {}
        return found

    customer = {
        "segment": given["segment"],
        "age": given["age"],
        "products_held": split_list(str(given.get("products_held", ""))),
        "acquired": split_list(str(given.get("acquired", ""))),
        "attributes": attributes("customer_attributes"),
    }
    offer = {
        "offer_id": given["offer_id"],
        "category": given["category"],
        "attributes": attributes("offer_attributes"),
    }
    if "value" in given:
        offer["value"] = float(given["value"])
    moment = Moment(
        event_type=str(given["event_type"]),
        channel=str(given["channel"]),
        timestamp=parse_time(str(given["timestamp"])),
        attributes=attributes("event_attributes"),
    )
    days = given.get("days_since_trigger")
    exposure = Exposure(
        days_since_trigger=None if days is None else float(days),
        phase=str(given.get("phase", "primary")),
        impressions=int(given.get("impressions", 0)),
        unanswered=int(given.get("unanswered", 0)),
    )
    return customer, offer, moment, exposure


class RankerModel(PythonModel):
    """The pyfunc wrapper: loads the pickled `OnlineRanker` and scores candidate rows with the
    ranker's own feature set."""

    def load_context(self, context: Any) -> None:
        with open(context.artifacts["ranker"], "rb") as handle:
            self.ranker: OnlineRanker = pickle.load(handle)  # our own artifact

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.Series:
        features = self.ranker.features
        return pd.Series(
            [
                self.ranker.p_accept(features.features(*records_of_row(row)))
                for row in model_input.to_dict(orient="records")
            ],
            name="p_accept",
        )
