"""Offline replay of logged bandit feedback through the live ranker's features and model.

`nbo replay LOG --items ITEMS --mapping MAPPING` reads a log (CSV or JSON Lines) of shown
offers, each with its reward and the logging policy's propensity, in time order (the mapping
and the rows: `logged`). For each round the target policy (an `OnlineRanker` with its feature
set, and an exploration policy, as in the stream: `targets`) ranks the candidates, its action
probabilities are recorded for off-policy evaluation, its P(accept) for the shown offer is
scored (progressive validation) and only then does it learn the logged reward: the model never
sees a label before it predicts. `report` writes what it measured.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from river import metrics

from features import Exposure, FeatureSet, Moment
from features.feature_set import DecisionParts
from models.candidates import Candidate, Scored
from models.names import DEFAULT_MODEL
from models.off_policy import Estimate, LoggedRound, OffPolicyLog, estimate_all
from models.policies import Policy
from models.ranker import OnlineRanker
from pipeline.connectors.files import RawRow, RejectedRow, read_rows
from pipeline.offline.logged import (
    Item,
    LoggedShow,
    LogMapping,
    Rejected,
    check_columns,
    parse_show,
    read_items,
)
from pipeline.offline.targets import TargetModel, resolve_model, resolve_policy

_UNIFORM_TOLERANCE = 1e-3
_CURVE_EVERY = 500  # rounds between points of the progressive-validation curve
# Below this many non-zero rewards among the evaluated rounds, a bootstrap interval says more
# about the few rounds that paid than about the policy (a handful of rare clicks gives [0, 0]).
FEW_REWARDS = 30
_NO_EXPOSURE = Exposure(days_since_trigger=None, phase="primary", impressions=0, unanswered=0)


@dataclass(frozen=True)
class RowOutcome:
    """What the target policy made of one evaluated round (`--rows`)."""

    line: int
    logged_offer: str
    chosen_offer: str  # the target policy's first choice
    logged_propensity: float
    target_probability: float  # of the logged offer, under the target policy
    predicted_reward: float
    reward: float


@dataclass
class ReplayResult:
    """What a replay measured: the log seen by the target policy, and how well it predicted."""

    policy: str
    model: OnlineRanker
    log: OffPolicyLog
    uniform_logging: bool
    rounds_learned: int
    log_loss: float
    roc_auc: float
    rejected: list[Rejected] = field(default_factory=list)
    curve: list[dict[str, float]] = field(default_factory=list)  # progressive metrics over time
    rows: list[RowOutcome] = field(default_factory=list)  # per evaluated round

    def estimates(self, resamples: int = 200, seed: int = 0) -> list[Estimate]:
        return estimate_all(
            self.log, include_replay=self.uniform_logging, resamples=resamples, seed=seed
        )

    def warnings(self) -> list[str]:
        """What a reader of the estimates must know before trusting them."""
        paying = sum(1 for row in self.rows if row.reward != 0)
        if self.rows and paying < FEW_REWARDS:
            return [
                f"only {paying} of {len(self.rows)} evaluated rounds have a non-zero reward "
                f"(fewer than {FEW_REWARDS}): the intervals are not to be trusted"
            ]
        return []


class Replayer:
    """Replays shows in time order through a ranker and a policy; one instance per replay.

    `model`, `features` and `policy` are as `resolve_model` and `resolve_policy` take them."""

    def __init__(
        self,
        items: dict[str, Item],
        mapping: LogMapping,
        *,
        model: TargetModel = DEFAULT_MODEL,
        features: str | FeatureSet | None = None,
        policy: str | Policy = "greedy",
        learning_rate: float = 0.15,
        epsilon: float = 0.1,
        seed: int = 0,
    ) -> None:
        self.items = items
        self.mapping = mapping
        self.ranker = resolve_model(model, features, learning_rate=learning_rate, seed=seed)
        self.policy = resolve_policy(policy, epsilon=epsilon, seed=seed)
        self._rounds: list[LoggedRound] = []
        self._uniform = True
        self._log_loss = metrics.LogLoss()
        self._roc_auc = metrics.ROCAUC()
        self._learned = 0
        self._curve: list[dict[str, float]] = []
        self.rows: list[RowOutcome] = []

    def step(self, show: LoggedShow) -> None:
        """Score, record for evaluation, then learn: one logged show."""
        names = show.candidates or tuple(sorted(self.items))
        unknown = [name for name in (show.offer_id, *names) if name not in self.items]
        if unknown:
            raise ValueError(f"offer {unknown[0]!r} is not in the items file")
        if show.offer_id not in names:
            raise ValueError(f"offer {show.offer_id!r} is not among the row's candidates")
        moment = Moment(show.event_type, show.channel, show.timestamp)
        features = self.ranker.features.for_decision(show.customer, moment)
        candidates = [self._candidate(self.items[name], features) for name in names]
        ranked = self.ranker.rank(candidates)
        order, propensities = self.policy.choose(self.ranker.ranking(ranked))
        logged = next(i for i, c in enumerate(ranked) if c.key == show.offer_id)
        if show.position == 1:
            predicted = [self._predicted_reward(c) for c in ranked]
            self._rounds.append(
                LoggedRound(
                    reward=show.reward,
                    propensity=show.propensity,
                    target_probability=propensities[logged],
                    target_value=sum(p * q for p, q in zip(propensities, predicted, strict=True)),
                    predicted_reward=predicted[logged],
                    matched=order[0] == logged,
                )
            )
            self.rows.append(
                RowOutcome(
                    line=show.line,
                    logged_offer=show.offer_id,
                    chosen_offer=ranked[order[0]].key,
                    logged_propensity=show.propensity,
                    target_probability=propensities[logged],
                    predicted_reward=predicted[logged],
                    reward=show.reward,
                )
            )
            self._uniform &= abs(show.propensity * len(names) - 1) < _UNIFORM_TOLERANCE
        accepted = show.reward > 0
        self._log_loss.update(accepted, ranked[logged].p_accept)
        self._roc_auc.update(accepted, ranked[logged].p_accept)
        self.ranker.learn_one(ranked[logged].all_features(), accepted)
        self._learned += 1
        if self._learned % _CURVE_EVERY == 0:
            self._curve.append(self._progress())

    @staticmethod
    def _candidate(item: Item, features: DecisionParts) -> Candidate:
        # a log knows no trigger: every offer is as if in its primary interest, never shown
        blocks, own = features.parts(item.offer, _NO_EXPOSURE)
        return Candidate(item.offer_id, own, item.value, item.lever, blocks)

    def _predicted_reward(self, candidate: Scored) -> float:
        if self.mapping.reward_model == "accept_times_value":
            return candidate.p_accept * candidate.value_now
        return candidate.p_accept

    def _progress(self) -> dict[str, float]:
        rewards = [r.reward for r in self._rounds]
        return {
            "rounds": float(self._learned),
            "log_loss": self._log_loss.get(),
            "roc_auc": float(self._roc_auc.get()),
            "logging_reward": sum(rewards) / len(rewards) if rewards else math.nan,
        }

    def _curve_to_end(self) -> list[dict[str, float]]:
        """The progressive curve, with a last point at the end of the log."""
        if self._curve and self._curve[-1]["rounds"] == self._learned:
            return list(self._curve)
        return [*self._curve, self._progress()]

    def result(self, rejected: list[Rejected]) -> ReplayResult:
        return ReplayResult(
            policy=self.policy.name,
            model=self.ranker,
            log=OffPolicyLog.of(self._rounds),
            uniform_logging=self._uniform and bool(self._rounds),
            rounds_learned=self._learned,
            log_loss=self._log_loss.get(),
            roc_auc=float(self._roc_auc.get()),
            rejected=rejected,
            curve=self._curve_to_end(),
            rows=list(self.rows),
        )


def replay_rows(rows: Iterable[RawRow], replayer: Replayer) -> ReplayResult:
    """Parse, sort by time (ties keep file order) and replay; bad rows are reported, not fatal."""
    rejected, shows = [], []
    for number, row in rows:
        if isinstance(row, RejectedRow):
            rejected.append(Rejected(number, f"{row.field}: {row.reason}"))
            continue
        try:
            shows.append(parse_show(number, row, replayer.mapping))
        except ValueError as error:
            rejected.append(Rejected(number, str(error)))
    shows.sort(key=lambda show: show.timestamp)
    for show in shows:
        try:
            replayer.step(show)
        except ValueError as error:
            rejected.append(Rejected(show.line, str(error)))
    rejected.sort(key=lambda r: r.line)
    return replayer.result(rejected)


def replay_file(
    log_path: Path,
    items_path: Path,
    mapping_path: Path | None = None,
    **replayer_options: Any,
) -> ReplayResult:
    """Replay a log file; `replayer_options` are those of `Replayer` (model, policy, seed...)."""
    mapping = LogMapping.from_file(mapping_path)
    items = read_items(items_path, mapping.items)
    rows = list(read_rows(log_path))
    columns = {column for _, row in rows if isinstance(row, dict) for column in row}
    check_columns(mapping, columns, log_path)
    return replay_rows(rows, Replayer(items, mapping, **replayer_options))
