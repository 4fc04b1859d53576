"""The model registry: every ranker model as an MLflow pyfunc, reviewed and promoted by alias.

Registered model `nbo-ranker`; alias `champion` is the model the stream decides with, alias
`challenger` the one it scores in shadow. A running ranker polls the aliases and switches
without a restart.

The pyfunc takes one row per candidate offer with the raw inputs of
`features.offer_features.candidate_features` (see `INPUT_EXAMPLE`) and returns P(accept), so a
reviewer can score hand-made cases without knowing the feature encoding.
"""

from __future__ import annotations

import math
import pickle
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.pyfunc.model import PythonModel

import features
import models
from features.offer_features import CustomerPart, DecisionContext, candidate_features
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
            "category": "insurance",
            "channel": "web",
            "event_type": "travel_booking",
            "hour": 9.0,
            "weekday": 0.0,
            "days_since_trigger": 0.5,
            "phase": "primary",
            "impressions": 0.0,
            "unanswered": 0.0,
        }
    ]
)


def features_of_row(row: dict[str, Any]) -> dict[str, float]:
    """The ranker's features for one pyfunc input row."""
    held = row.get("products_held") or ""
    customer = CustomerPart.of(
        {
            "segment": row["segment"],
            "age": row["age"],
            "products_held": [p for p in str(held).split("|") if p],
        }
    )
    context = DecisionContext(
        int(row["hour"]), int(row["weekday"]), row["channel"], row["event_type"]
    )
    days = row.get("days_since_trigger")
    return candidate_features(
        customer,
        {"category": row["category"]},
        context,
        days_since_trigger=None if days is None or math.isnan(days) else float(days),
        phase=str(row["phase"]),
        impressions=int(row["impressions"]),
        unanswered=int(row["unanswered"]),
    )


class RankerModel(PythonModel):
    """The pyfunc wrapper: loads the pickled `OnlineRanker` and scores candidate rows."""

    def load_context(self, context: Any) -> None:
        with open(context.artifacts["ranker"], "rb") as handle:
            self.ranker: OnlineRanker = pickle.load(handle)  # our own artifact

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.Series:
        return pd.Series(
            [
                self.ranker.predict_one(features_of_row(row))
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
    signature = infer_signature(INPUT_EXAMPLE, example_output.predict(None, INPUT_EXAMPLE))
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "ranker.pkl"
        path.write_bytes(pickle.dumps(ranker, protocol=pickle.HIGHEST_PROTOCOL))
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
    MlflowClient().set_model_version_tag(
        REGISTERED_MODEL, version, "ranker_version", ranker.version
    )
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
    """The `OnlineRanker` inside a registered version, ready to rank and to go on learning."""
    loaded = mlflow.pyfunc.load_model(f"models:/{REGISTERED_MODEL}/{version}")
    ranker: OnlineRanker = loaded.unwrap_python_model().ranker
    return ranker
