"""Replaying `feedback`: would another model have predicted our customers' answers better?

Every feedback record holds the features the deciding model scored and the label the customer
gave. Replayed in the order they were resolved, a target model predicts each label before it
learns it (progressive validation), beside the P(accept) the deciding model had at decision
time: log loss and ROC AUC of both, over the same labels. The target reads the records' own
features, so it must use the feature set they were decided with (the raw records are not
kept): unless told otherwise, a fresh target reads the built-in feature set most records were
decided with. Off-policy estimates need each decision's candidate offers, which feedback does not
hold: `nbo replay` on a log with its candidates gives them.

>>> from datetime import datetime, UTC
>>> told = {"decision_id": "d-1", "customer_id": "C1", "offer_id": "a", "rank": 1,
...         "outcome": "accept", "label": True, "reward": 100.0, "features": {"bias": 1.0},
...         "feature_set": "default/6", "p_accept": 0.4, "value_now": 100.0, "propensity": 1.0,
...         "model_version": "logistic-0", "decided_at": "2026-11-02T09:00:00+00:00",
...         "resolved_at": "2026-11-02T09:05:00+00:00"}
>>> result = replay_feedback([("feedback[0]@0", told)], "naive_bayes")
>>> result.rounds, result.target.version, result.rejected
(1, 'naive_bayes-1', [])
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from river import metrics

from features import FEATURE_SETS, FeatureSet
from models.ranker import OnlineRanker
from pipeline.connectors.files import RejectedRow
from pipeline.contracts.schemas import Feedback, describe_errors
from pipeline.errors import ConfigError
from pipeline.offline.logged import Rejected
from pipeline.offline.targets import TargetModel, is_learned, resolve_model


@dataclass
class Predictions:
    """Progressive log loss and ROC AUC of one model's P(accept) over the replayed labels."""

    log_loss: metrics.LogLoss = field(default_factory=metrics.LogLoss)
    roc_auc: metrics.ROCAUC = field(default_factory=metrics.ROCAUC)

    def update(self, accepted: bool, p_accept: float) -> None:
        self.log_loss.update(accepted, p_accept)
        self.roc_auc.update(accepted, p_accept)

    def figures(self) -> dict[str, float]:
        return {"log_loss": self.log_loss.get(), "roc_auc": float(self.roc_auc.get())}


@dataclass
class FeedbackReplay:
    target: OnlineRanker  # learned from every replayed label, in order
    rounds: int = 0
    predicted: Predictions = field(default_factory=Predictions)  # the target's, before learning
    deployed: Predictions = field(default_factory=Predictions)  # the deciding models' own
    rejected: list[Rejected] = field(default_factory=list)  # `line` is the record's index

    def report(self) -> dict[str, Any]:
        return {
            "rounds": self.rounds,
            "model_version": self.target.version,
            "feature_set": self.target.features.label,
            "target": self.predicted.figures(),
            "deployed": self.deployed.figures(),
            "rejected": [{"record": r.line, "reason": r.reason} for r in self.rejected],
        }


def replay_feedback(
    records: Iterable[tuple[str, dict[str, Any] | RejectedRow]],
    model: TargetModel,
    features: str | FeatureSet | None = None,
) -> FeedbackReplay:
    """Replay feedback records (`(where, record)` pairs: where it was read, and the JSON
    record) through the target `model` (as `resolve_model` takes it), in resolution order."""
    rejected: list[Rejected] = []
    told: list[tuple[int, Feedback]] = []
    for index, (where, record) in enumerate(records):
        if isinstance(record, RejectedRow):
            rejected.append(Rejected(index, f"{where}: {record.field}: {record.reason}"))
            continue
        try:
            told.append((index, Feedback.model_validate(record)))
        except ValidationError as error:
            rejected.append(Rejected(index, f"{where}: {describe_errors(error)}"))
    if features is None and not is_learned(model):
        features = _decided_with(told)
    target = resolve_model(model, features)
    result = FeedbackReplay(target, rejected=rejected)
    told.sort(key=lambda item: (item[1].resolved_at, item[0]))
    other_sets = {f.feature_set for _, f in told} - {target.features.label}
    if told and other_sets == {f.feature_set for _, f in told}:
        raise ConfigError(
            f"the feedback was decided with feature set(s) {', '.join(sorted(other_sets))}; "
            f"the target reads {target.features.label}: give it the same feature set"
        )
    for index, feedback in told:
        if feedback.feature_set != target.features.label:
            reason = f"decided with feature set {feedback.feature_set}"
            result.rejected.append(Rejected(index, reason))
            continue
        result.predicted.update(feedback.label, target.p_accept(feedback.features))
        result.deployed.update(feedback.label, feedback.p_accept)
        target.learn_one(feedback.features, feedback.label)
        result.rounds += 1
    result.rejected.sort(key=lambda r: r.line)
    return result


def _decided_with(told: list[tuple[int, Feedback]]) -> FeatureSet | None:
    """The built-in feature set most of the records were decided with (None: none was)."""
    built_in = {feature_set.label: feature_set for feature_set in FEATURE_SETS.values()}
    labels = Counter(f.feature_set for _, f in told if f.feature_set in built_in)
    return built_in[labels.most_common(1)[0][0]] if labels else None
