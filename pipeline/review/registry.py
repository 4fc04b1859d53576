"""The model registry: every ranker model as an MLflow pyfunc, reviewed and promoted by alias.

Registered model `nbo-ranker`; alias `champion` is the model the stream decides with, alias
`challenger` the one it scores in shadow. A running ranker polls the aliases and switches
without a restart. What a version is, as a pyfunc, is in `pyfunc`.
"""

from __future__ import annotations

import pickle
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import cloudpickle
import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, infer_signature

import features
import models
from models.ranker import OnlineRanker
from pipeline.review import pyfunc
from pipeline.review.pyfunc import INPUT_EXAMPLE, INPUT_SCHEMA, RankerModel

# The pyfunc wrapper travels by value in each logged model: it then needs only `models/` and
# `features/` (its code paths) to load, not `pipeline`.
cloudpickle.register_pickle_by_value(pyfunc)

REGISTERED_MODEL = "nbo-ranker"
EXPERIMENT = "nbo-ranker"
CHAMPION, CHALLENGER = "champion", "challenger"
ALIASES = (CHAMPION, CHALLENGER)


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
