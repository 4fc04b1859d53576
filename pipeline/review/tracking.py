"""A ranker's MLflow run and its link to the registry.

The stream must never stop because MLflow is slow or down: every call here logs a warning on
failure and the ranker goes on deciding with the model it has.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import mlflow
from matplotlib import pyplot as plt

from models.evaluation import StreamMetrics
from models.ranker import OnlineRanker
from pipeline.review import registry
from pipeline.review.curves import learned_curves
from pipeline.review.plots import review_figures

log = logging.getLogger(__name__)
T = TypeVar("T")


class RunTracker:
    """One MLflow run per ranker process: parameters at start, metrics over time, then the
    model (registered as a new version of `nbo-ranker`) and the review plots at the end."""

    def __init__(
        self,
        tracking_uri: str,
        artifacts_dir: Path,
        *,
        run_name: str,
        params: dict[str, Any],
        poll_interval: float = 5.0,
    ) -> None:
        self.poll_interval = poll_interval
        self.run_id: str | None = None
        self._polled_at = -float("inf")
        self._aliases: dict[str, str | None] = {}

        def start() -> None:
            registry.configure(tracking_uri, artifacts_dir)
            run = mlflow.start_run(run_name=run_name)
            mlflow.log_params(params)
            self.run_id = run.info.run_id

        self._safely("start the MLflow run", start)

    def _safely(self, what: str, call: Callable[[], T]) -> T | None:
        try:
            return call()
        except Exception as error:
            log.warning("MLflow: could not %s: %s", what, error)
            return None

    def log_metrics(self, values: dict[str, float], step: int) -> None:
        if self.run_id is not None:
            self._safely("log metrics", lambda: mlflow.log_metrics(values, step=step))

    def log_figure(self, figure: Any, path: str) -> None:
        if self.run_id is not None:
            self._safely(f"log {path}", lambda: mlflow.log_figure(figure, path))

    def end(self) -> None:
        """End the run (`finish` ends a ranker's, once its model is logged)."""
        if self.run_id is not None:
            self._safely("end the run", mlflow.end_run)

    def aliases(self) -> dict[str, str | None]:
        """Which version holds each alias, asked at most once per `poll_interval`."""
        if time.monotonic() - self._polled_at >= self.poll_interval:
            self._polled_at = time.monotonic()
            polled = self._safely(
                "read the registry aliases",
                lambda: {alias: registry.aliased_version(alias) for alias in registry.ALIASES},
            )
            if polled is not None:
                self._aliases = polled
        return self._aliases

    def load(self, version: str) -> OnlineRanker | None:
        return self._safely(f"load model version {version}", lambda: registry.load_ranker(version))

    def finish(self, ranker: OnlineRanker, metrics: StreamMetrics) -> tuple[str, bool] | None:
        """Log the plots and register the model: returns its version and whether it became the
        champion (the first version ever does: there is nothing to compare it with)."""
        if self.run_id is None:
            return None

        def finish() -> tuple[str, bool]:
            for name, figure in review_figures(metrics, ranker).items():
                mlflow.log_figure(figure, f"plots/{name}")
                plt.close(figure)
            if metrics.documented_curves:  # the offers whose learned curve differs most first
                offers = learned_curves(ranker, metrics.documented_curves)
                mlflow.log_dict({"offers": [o.row() for o in offers]}, "review/curves.json")
            version = registry.log_ranker(ranker)
            assert version is not None
            first = registry.aliased_version(registry.CHAMPION) is None
            if first:
                registry.promote(version)
            mlflow.end_run()
            return version, first

        return self._safely("log the model", finish)


def log_offline_run(
    tracking_uri: str,
    artifacts_dir: Path,
    *,
    run_name: str,
    params: dict[str, Any],
    metrics: dict[str, float],
    curve: list[dict[str, float]],
    ranker: OnlineRanker,
    register: bool = False,
) -> tuple[str, str | None]:
    """One finished offline run (a replay): returns its run id and registered version, if any.

    Unlike the stream's tracker, this raises on failure: a data scientist asked for it.
    """
    registry.configure(tracking_uri, artifacts_dir)
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.log_params(params)
        for point in curve:
            step = int(point["rounds"])
            mlflow.log_metrics({k: v for k, v in point.items() if k != "rounds"}, step=step)
        mlflow.log_metrics({k: v for k, v in metrics.items() if not math.isnan(v)})  # not estimable
        version = registry.log_ranker(ranker, register=register)
        return run.info.run_id, version
