"""Offline replay of logged bandit feedback through the live ranker's features and model.

`nbo replay LOG --items ITEMS --mapping MAPPING` reads a log (CSV or JSON Lines) of shown
offers, each with its reward and the logging policy's propensity, in time order. For each
round the target policy (an `OnlineRanker` with its feature set, and an exploration policy, as
in the stream) ranks the candidates, its action probabilities are recorded for off-policy
evaluation, its P(accept) for the shown offer is scored (progressive validation) and only then
does it learn the logged reward: the model never sees a label before it predicts.

The target model is a name or import reference (as `NBO_RANKER_MODEL`), a registered version
(`models:/nbo-ranker/3`, `models:/nbo-ranker@champion`: it goes on learning from the log), or,
from Python, any `OnlineRanker` or River classifier or pipeline (see `resolve_model`).

The mapping (YAML) says which column is which, so a log from another system is used as is:

    timestamp: event_time          # required
    offer_id: item                 # required: the offer shown
    reward: clicked                # required: > 0 counts as accepted
    propensity: p_log              # required: P(logging policy showed this offer)
    position: slot                 # optional: only position 1 is evaluated, all are learned
    candidates: eligible           # optional: offers considered, `a|b|c`; default every item
    context: {segment: seg, age: age, channel: channel, event_type: trigger,
              attributes: [user_feature_0]}   # customer attributes a feature set may read
    items: {offer_id: id, category: family, value: value, attributes: [brand]}

A missing entry means the column has nbo's own name. The reward model of doubly robust is the
ranker's P(accept), times the offer's value when `reward_model: accept_times_value`.
"""

from __future__ import annotations

import copy
import csv
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from river import base, metrics

from features import DEFAULT_FEATURES, Exposure, FeatureSet, Moment, make_feature_set
from features.feature_set import DecisionParts
from features.references import import_reference, is_reference
from models.names import DEFAULT_MODEL
from models.off_policy import Estimate, LoggedRound, OffPolicyLog, estimate_all
from models.policies import Policy, make_policy
from models.ranker import Candidate, OnlineRanker, as_ranker, make_ranker
from pipeline.contracts.schemas import describe_errors
from pipeline.errors import ConfigError, LoadError

_UNIFORM_TOLERANCE = 1e-3
_CURVE_EVERY = 500  # rounds between points of the progressive-validation curve
# Below this many non-zero rewards among the evaluated rounds, a bootstrap interval says more
# about the few rounds that paid than about the policy (a handful of rare clicks gives [0, 0]).
FEW_REWARDS = 30
_NO_EXPOSURE = Exposure(days_since_trigger=None, phase="primary", impressions=0, unanswered=0)


class ContextColumns(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    segment: str | None = "segment"
    age: str | None = "age"
    products_held: str | None = "products_held"
    channel: str | None = "channel"
    event_type: str | None = "event_type"
    attributes: tuple[str, ...] = ()  # columns read as the customer's attributes


class ItemColumns(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    offer_id: str = "offer_id"
    category: str = "category"
    value: str | None = None
    lever: str | None = None
    attributes: tuple[str, ...] = ()  # columns read as the offer's attributes


class LogMapping(BaseModel):
    """Which column of the log (and of the items file) holds what nbo needs."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    timestamp: str = "timestamp"
    offer_id: str = "offer_id"
    reward: str = "reward"
    propensity: str = "propensity"
    position: str | None = None
    candidates: str | None = None
    context: ContextColumns = ContextColumns()
    items: ItemColumns = ItemColumns()
    reward_model: Literal["accept", "accept_times_value"] = "accept"

    @classmethod
    def from_file(cls, path: Path | None) -> LogMapping:
        if path is None:
            return cls()
        if not path.is_file():
            raise LoadError(f"{path}: no such file")
        try:
            return cls.model_validate(yaml.safe_load(path.read_text()) or {})
        except (yaml.YAMLError, ValidationError) as error:
            detail = describe_errors(error) if isinstance(error, ValidationError) else str(error)
            raise LoadError(f"{path}: not a valid log mapping: {detail}") from error


@dataclass(frozen=True)
class Item:
    offer_id: str
    offer: dict[str, Any]  # what a feature set reads: offer_id, category, value, attributes
    value: float = 1.0
    lever: float = 1.0


@dataclass(frozen=True)
class LoggedShow:
    line: int
    timestamp: datetime
    offer_id: str
    reward: float
    propensity: float
    position: int
    candidates: tuple[str, ...] | None
    customer: dict[str, Any]
    channel: str
    event_type: str


@dataclass(frozen=True)
class Rejected:
    line: int
    reason: str


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


class _NumberedLines:
    """A text file's lines for `csv`, remembering which lines each record was read from, so a
    row is reported at its true first line (after blank lines and multi-line fields too)."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = lines
        self._read: list[tuple[int, bool]] = []  # (line number, blank) since the last record

    def __iter__(self) -> Iterator[str]:
        for number, line in enumerate(self._lines, start=1):
            self._read.append((number, not line.strip()))
            yield line

    def first_line(self) -> int:
        """The first non-blank line read since the last call."""
        numbers = [number for number, blank in self._read if not blank] or [0]
        self._read.clear()
        return numbers[0]


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) of a CSV or JSON Lines file; a bad JSON line is a row of its own."""
    if not path.is_file():
        raise LoadError(f"{path}: no such file")
    with open(path, newline="") as handle:
        if path.suffix.lower() == ".csv":
            lines = _NumberedLines(handle)
            reader = csv.DictReader(lines)
            if reader.fieldnames is None:
                return
            lines.first_line()  # the header's
            for row in reader:
                yield lines.first_line(), row
            return
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as error:
                    yield number, {"__error__": f"not JSON: {error.msg}"}


def read_items(path: Path, columns: ItemColumns) -> dict[str, Item]:
    items = {}
    for number, row in read_rows(path):
        try:
            offer_id = str(row[columns.offer_id])
            value = float(row[columns.value]) if columns.value else 1.0
            offer = {
                "offer_id": offer_id,
                "category": str(row[columns.category]),
                "value": value,
                "attributes": {name: row[name] for name in columns.attributes},
            }
            lever = float(row[columns.lever]) if columns.lever else 1.0
            items[offer_id] = Item(offer_id, offer, value, lever)
        except (KeyError, TypeError, ValueError) as error:
            raise LoadError(f"{path}:{number}: bad item row: {error!r}") from error
    if not items:
        raise LoadError(f"{path}: no items")
    return items


def _timestamp(value: Any) -> datetime:
    moment = (
        datetime.fromtimestamp(float(value), UTC)
        if isinstance(value, int | float)
        else datetime.fromisoformat(str(value))
    )
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _list(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    return tuple(part.strip() for part in str(value or "").split("|") if part.strip())


def _finite(value: Any) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return number


def check_columns(mapping: LogMapping, columns: set[str], path: Path) -> None:
    """Refuse a mapping that names a column the log lacks: every row would lose what it maps
    (a context column) or be rejected (a required one), and the replay would not say why."""
    named = {
        name: getattr(mapping, name) for name in ("timestamp", "offer_id", "reward", "propensity")
    }
    for name in ("position", "candidates"):
        if getattr(mapping, name) is not None:
            named[name] = getattr(mapping, name)
    for name in mapping.context.model_fields_set - {"attributes"}:
        if getattr(mapping.context, name) is not None:
            named[f"context.{name}"] = getattr(mapping.context, name)
    for column in mapping.context.attributes:
        named[f"context.attributes[{column}]"] = column
    missing = {key: column for key, column in named.items() if column not in columns}
    if missing:
        listed = ", ".join(f"{key} → {column!r}" for key, column in missing.items())
        raise LoadError(f"{path}: the mapping names columns the log does not have: {listed}")


def parse_show(number: int, row: dict[str, Any], mapping: LogMapping) -> LoggedShow:
    """One log row as a `LoggedShow`; raises ValueError naming the column that is wrong."""
    if "__error__" in row:
        raise ValueError(row["__error__"])

    def column(name: str | None, required: bool = True) -> Any:
        if name is None:
            return None
        if name not in row or row[name] in ("", None):
            if required:
                raise ValueError(f"column {name!r} is missing")
            return None
        return row[name]

    def parsed(name: str, convert: Any) -> Any:
        try:
            return convert(column(name))
        except (TypeError, ValueError) as error:
            raise ValueError(f"column {name!r}: {error}") from error

    propensity = parsed(mapping.propensity, _finite)
    if not 0 < propensity <= 1:
        raise ValueError(f"column {mapping.propensity!r}: propensity {propensity} not in (0, 1]")
    context = mapping.context
    age = column(context.age, required=False)
    customer = {
        "segment": column(context.segment, required=False) or "unknown",
        "age": float(age) if age is not None else 0.0,
        "products_held": _list(column(context.products_held, required=False)),
        "attributes": {
            name: row[name] for name in context.attributes if row.get(name) not in ("", None)
        },
    }
    position = column(mapping.position, required=False)
    candidates = column(mapping.candidates, required=False)
    return LoggedShow(
        line=number,
        timestamp=parsed(mapping.timestamp, _timestamp),
        offer_id=str(column(mapping.offer_id)),
        reward=parsed(mapping.reward, _finite),
        propensity=propensity,
        position=int(position) if position is not None else 1,
        candidates=_list(candidates) if candidates is not None else None,
        customer=customer,
        channel=str(column(context.channel, required=False) or "unknown"),
        event_type=str(column(context.event_type, required=False) or "unknown"),
    )


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


ModelChoice = str | OnlineRanker | base.Classifier


def resolve_model(
    model: ModelChoice,
    features: str | FeatureSet | None = None,
    *,
    learning_rate: float = 0.15,
    seed: int = 0,
) -> OnlineRanker:
    """The ranker a replay evaluates, its own copy (a replay learns as it goes):

    - an `OnlineRanker` object as it is, learned state and feature set included;
    - a River classifier or pipeline object, fresh, with `features` (default: nbo's);
    - `models:/nbo-ranker/N` or `models:/nbo-ranker@alias`: a registered version as it was
      registered, with its feature set (MLflow's tracking URI must point at the registry);
    - a model name or `package.module:attribute`, as the setting `NBO_RANKER_MODEL`.

    Raises ConfigError when `model` or `features` names nothing usable.
    """
    learned = isinstance(model, OnlineRanker) or (
        isinstance(model, str) and model.startswith("models:/")
    )
    if learned and features is not None:
        raise ConfigError(f"{model}: a learned ranker reads its own feature set; give no features")
    try:
        if isinstance(model, OnlineRanker):
            return copy.deepcopy(model)
        if learned:
            from pipeline.review.registry import (
                load_ranker_at,  # MLflow only when a registry is named
            )

            return load_ranker_at(str(model))
        feature_set = make_feature_set(features) if isinstance(features, str) else features
        if isinstance(model, str):
            return make_ranker(
                model,
                features=feature_set or DEFAULT_FEATURES,
                learning_rate=learning_rate,
                seed=seed,
            )
        return as_ranker(model, feature_set or DEFAULT_FEATURES)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"cannot replay model {model}: {error}") from error


def resolve_policy(policy: str | Policy, *, epsilon: float = 0.1, seed: int = 0) -> Policy:
    """An exploration policy by name, by `package.module:attribute`, or as an object."""
    if not isinstance(policy, str):
        return policy
    try:
        if is_reference(policy):
            found: Policy = import_reference(policy)
            return found
        return make_policy(policy, seed, epsilon)
    except ValueError as error:
        raise ConfigError(f"cannot replay policy {policy}: {error}") from error


class Replayer:
    """Replays shows in time order through a ranker and a policy; one instance per replay.

    `model`, `features` and `policy` are as `resolve_model` and `resolve_policy` take them."""

    def __init__(
        self,
        items: dict[str, Item],
        mapping: LogMapping,
        *,
        model: ModelChoice = DEFAULT_MODEL,
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
        shared, own = features.parts(item.offer, _NO_EXPOSURE)
        return Candidate(item.offer_id, own, item.value, item.lever, shared)

    def _predicted_reward(self, candidate: Candidate) -> float:
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


def replay_rows(rows: Iterable[tuple[int, dict[str, Any]]], replayer: Replayer) -> ReplayResult:
    """Parse, sort by time (ties keep file order) and replay; bad rows are reported, not fatal."""
    rejected, shows = [], []
    for number, row in rows:
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
    check_columns(mapping, {column for _, row in rows for column in row}, log_path)
    return replay_rows(rows, Replayer(items, mapping, **replayer_options))


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
