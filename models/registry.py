"""The model registry: every ranker model as an MLflow pyfunc, reviewed and promoted by alias.

Registered model `nbo-ranker`; alias `champion` is the model the stream decides with, alias
`challenger` the one it scores in shadow. A running ranker polls the aliases and switches
without a restart.

The pyfunc takes one row per candidate offer with the raw records a feature set reads (see
`INPUT_EXAMPLE` and `records_of_row`) and returns P(accept): the model's own feature set, which
travels with it, builds the features, so a reviewer scores hand-made cases without knowing the
feature encoding, and a model learned with a data scientist's feature set is scored with it.
"""

from __future__ import annotations

import json
import math
import pickle
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import cloudpickle
import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, infer_signature
from mlflow.pyfunc.model import PythonModel
from mlflow.types.schema import ColSpec, Schema

import features
import models
from features import Exposure, Moment
from models.ranker import OnlineRanker

REGISTERED_MODEL = "nbo-ranker"
EXPERIMENT = "nbo-ranker"
CHAMPION, CHALLENGER = "champion", "challenger"
ALIASES = (CHAMPION, CHALLENGER)

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
        "products_held": [p for p in str(given.get("products_held", "")).split("|") if p],
        "attributes": attributes("customer_attributes"),
    }
    offer = {
        "offer_id": given["offer_id"],
        "category": given["category"],
        "attributes": attributes("offer_attributes"),
    }
    if "value" in given:
        offer["value"] = float(given["value"])
    timestamp = datetime.fromisoformat(str(given["timestamp"]))
    moment = Moment(
        event_type=str(given["event_type"]),
        channel=str(given["channel"]),
        timestamp=timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=UTC),
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


def configure(tracking_uri: str, artifacts_dir: Path) -> str:
    """Point MLflow at the store and make sure the experiment exists; returns its id."""
    mlflow.set_tracking_uri(tracking_uri)
    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        artifacts_dir.mkdir(parents=True, exist_ok=True)
        experiment_id: str = mlflow.create_experiment(
            EXPERIMENT, artifact_location=artifacts_dir.resolve().as_uri()
        )
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def log_ranker(ranker: OnlineRanker, *, register: bool = True) -> str | None:
    """Log `ranker` as a pyfunc in the active run; register it as a new version if asked.

    Returns the registered version, or None when not registering.
    """
    example_output = RankerModel()
    example_output.ranker = ranker
    outputs = infer_signature(INPUT_EXAMPLE, example_output.predict(None, INPUT_EXAMPLE)).outputs
    signature = ModelSignature(inputs=INPUT_SCHEMA, outputs=outputs)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "ranker.pkl"
        # cloudpickle: a feature set or a pipeline step written in a notebook travels by value
        path.write_bytes(cloudpickle.dumps(ranker, protocol=pickle.HIGHEST_PROTOCOL))
        info = mlflow.pyfunc.log_model(
            name="ranker",
            python_model=RankerModel(),
            artifacts={"ranker": str(path)},
            signature=signature,
            input_example=INPUT_EXAMPLE,
            # the code travels with the model, so a reviewer can load it without nbo installed
            code_paths=[str(Path(models.__file__).parent), str(Path(features.__file__).parent)],
            pip_requirements=_requirements(),
            registered_model_name=REGISTERED_MODEL if register else None,
        )
    if not register:
        return None
    version = str(info.registered_model_version)
    client = MlflowClient()
    client.set_model_version_tag(REGISTERED_MODEL, version, "ranker_version", ranker.version)
    client.set_model_version_tag(REGISTERED_MODEL, version, "feature_set", ranker.features.label)
    return version


def _requirements() -> list[str]:
    return [f"{name}=={metadata.version(name)}" for name in ("mlflow", "river", "pandas", "numpy")]


@dataclass(frozen=True)
class ModelVersion:
    version: str
    aliases: tuple[str, ...]
    ranker_version: str
    run_id: str
    created: pd.Timestamp


def list_versions() -> list[ModelVersion]:
    """Every version of `nbo-ranker`, newest first."""
    client = MlflowClient()
    try:
        aliases = client.get_registered_model(REGISTERED_MODEL).aliases
    except MlflowException:
        return []
    by_version: dict[str, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(str(version), []).append(alias)
    versions = client.search_model_versions(f"name='{REGISTERED_MODEL}'")
    rows = [
        ModelVersion(
            version=str(v.version),
            aliases=tuple(sorted(by_version.get(str(v.version), []))),
            ranker_version=v.tags.get("ranker_version", ""),
            run_id=v.run_id or "",
            created=pd.Timestamp(v.creation_timestamp, unit="ms"),
        )
        for v in versions
    ]
    return sorted(rows, key=lambda row: int(row.version), reverse=True)


def promote(version: str, alias: str = CHAMPION) -> None:
    """Give `version` the alias; a challenger promoted to champion stops being the challenger."""
    if alias not in ALIASES:
        raise ValueError(f"alias must be one of {', '.join(ALIASES)}")
    client = MlflowClient()
    client.get_model_version(REGISTERED_MODEL, version)  # raises when there is no such version
    client.set_registered_model_alias(REGISTERED_MODEL, alias, version)
    if alias == CHAMPION and aliased_version(CHALLENGER) == version:
        client.delete_registered_model_alias(REGISTERED_MODEL, CHALLENGER)


def aliased_version(alias: str) -> str | None:
    try:
        return str(MlflowClient().get_model_version_by_alias(REGISTERED_MODEL, alias).version)
    except MlflowException:
        return None


def load_ranker(version: str) -> OnlineRanker:
    """The `OnlineRanker` of registered version `version` (a number or an alias)."""
    reference = f"@{version}" if version in ALIASES else f"/{version}"
    return load_ranker_at(f"models:/{REGISTERED_MODEL}{reference}")


def load_ranker_at(uri: str) -> OnlineRanker:
    """The `OnlineRanker` a model URI names (`models:/nbo-ranker/3`, `models:/nbo-ranker@champion`,
    `runs:/...`), with its feature set, ready to rank and to go on learning. ValueError when
    there is no such model."""
    try:
        loaded = mlflow.pyfunc.load_model(uri)
    except MlflowException as error:
        raise ValueError(f"{uri}: {error.message}") from error
    ranker = getattr(loaded.unwrap_python_model(), "ranker", None)
    if not isinstance(ranker, OnlineRanker):
        raise ValueError(f"{uri} is not an nbo ranker")
    return ranker
