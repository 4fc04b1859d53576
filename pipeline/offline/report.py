"""A replay's results for people and tools: flat metrics (MLflow), a JSON report, rows as CSV."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from models.off_policy import Estimate
from pipeline.offline.replay import ReplayResult, RowOutcome


def figures(result: ReplayResult, estimates: list[Estimate]) -> dict[str, float]:
    """The replay's figures as flat metrics (for MLflow)."""
    values = {"log_loss": result.log_loss, "roc_auc": result.roc_auc}
    for estimate in estimates:
        values[f"ope_{estimate.estimator}"] = estimate.value
        values[f"ope_{estimate.estimator}_low"] = estimate.low
        values[f"ope_{estimate.estimator}_high"] = estimate.high
    return values


def report(result: ReplayResult, estimates: list[Estimate]) -> dict[str, Any]:
    """The replay's results as JSON-ready data (a figure that is not a number is null)."""
    safe: dict[str, Any] = _json_safe(
        {
            "policy": result.policy,
            "model_version": result.model.version,
            "feature_set": result.model.features.label,
            "rounds_learned": result.rounds_learned,
            "rounds_evaluated": len(result.log),
            "uniform_logging": result.uniform_logging,
            "log_loss": result.log_loss,
            "roc_auc": result.roc_auc,
            "estimates": [estimate.as_dict() for estimate in estimates],
            "rejected": [{"line": r.line, "reason": r.reason} for r in result.rejected],
            "warnings": result.warnings(),
        }
    )
    return safe


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value


def write_rows(result: ReplayResult, path: Path) -> None:
    """One CSV line per evaluated round: what was logged and what the target policy made of it."""
    names = [f.name for f in RowOutcome.__dataclass_fields__.values()]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        for row in result.rows:
            writer.writerow({name: getattr(row, name) for name in names})
