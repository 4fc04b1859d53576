"""What nbo earns: each group's decisions, acceptance and value per decision, and the model's
lift over each baseline of the control group, with 95% intervals.

A decision counts once it is settled: it showed nothing (value 0), or a label of it has come
(`feedback`). Its value is what its labels earned (`reward`: an accepted offer's value now), its
acceptance whether one was accepted. Decisions still waiting for their labels are left out of
both groups alike; a report read while many are waiting leans toward the quick answers, which
are acceptances, so read it over decisions older than the offers' response windows.

>>> report = ImpactReport()
>>> for i, (group, baseline, reward) in enumerate(
...     [("treatment", None, 100.0), ("treatment", None, 0.0), ("treatment", None, 50.0),
...      ("control", "random", 0.0), ("control", "random", 20.0)]):
...     report.add_decision({"decision_id": f"d{i}", "group": group, "baseline": baseline,
...                          "offers": [{"offer_id": "a"}]})
...     report.add_feedback({"decision_id": f"d{i}", "label": reward > 0, "reward": reward})
>>> [(g.name, g.decisions, round(g.value.mean, 1)) for g in report.groups()]
[('treatment', 3, 50.0), ('control/random', 2, 10.0)]
>>> lift = report.lifts()[0]
>>> lift.baseline, round(lift.absolute.mean, 1), round(lift.relative.mean, 1)
('control/random', 40.0, 4.0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


@dataclass(frozen=True)
class Estimate:
    """A mean with its 95% interval."""

    mean: float
    low: float
    high: float

    def covers(self, value: float) -> bool:
        return self.low <= value <= self.high

    def __str__(self) -> str:
        return f"{self.mean:.3g} [{self.low:.3g}, {self.high:.3g}]"


@dataclass
class RunningMean:
    """Count, sum and sum of squares: a mean and its standard error, added to one at a time."""

    n: int = 0
    total: float = 0.0
    squares: float = 0.0

    def add(self, value: float) -> None:
        self.n += 1
        self.total += value
        self.squares += value * value

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0

    @property
    def variance_of_mean(self) -> float:
        """The squared standard error of the mean (the sample variance over n)."""
        if self.n < 2:
            return math.inf if self.n else 0.0
        variance = max(0.0, (self.squares - self.n * self.mean**2) / (self.n - 1))
        return variance / self.n

    def estimate(self) -> Estimate:
        half = Z95 * math.sqrt(self.variance_of_mean)
        return Estimate(self.mean, self.mean - half, self.mean + half)


@dataclass(frozen=True)
class GroupFigures:
    name: str  # treatment, or control/<baseline>
    decisions: int
    acceptance: Estimate  # share of decisions with an accepted offer
    value: Estimate  # value earned per decision


@dataclass(frozen=True)
class Lift:
    """The treatment's value per decision over a baseline's: the difference, and the
    difference as a share of the baseline's (the delta method's interval)."""

    baseline: str
    absolute: Estimate
    relative: Estimate


@dataclass
class _Decision:
    group: str
    shows_nothing: bool
    labelled: bool = False
    accepted: bool = False
    value: float = 0.0


@dataclass
class ImpactReport:
    """The report, kept up to date one decision and one label at a time."""

    _decisions: dict[str, _Decision] = field(default_factory=dict)
    _early_labels: dict[str, list[Mapping[str, Any]]] = field(default_factory=dict)

    def add_decision(self, decision: Mapping[str, Any]) -> None:
        group = str(decision.get("group") or "treatment")
        if decision.get("baseline"):
            group = f"{group}/{decision['baseline']}"
        decision_id = str(decision["decision_id"])
        self._decisions[decision_id] = _Decision(group, not decision.get("offers"))
        for label in self._early_labels.pop(decision_id, []):  # read before their decision
            self.add_feedback(label)

    def add_feedback(self, feedback: Mapping[str, Any]) -> None:
        decision = self._decisions.get(str(feedback["decision_id"]))
        if decision is None:
            self._early_labels.setdefault(str(feedback["decision_id"]), []).append(feedback)
            return
        decision.labelled = True
        decision.accepted = decision.accepted or bool(feedback["label"])
        decision.value += float(feedback["reward"])

    def _moments(self) -> dict[str, tuple[RunningMean, RunningMean]]:
        found: dict[str, tuple[RunningMean, RunningMean]] = {}
        for decision in self._decisions.values():
            if not (decision.labelled or decision.shows_nothing):
                continue  # still waiting for its labels
            acceptance, value = found.setdefault(decision.group, (RunningMean(), RunningMean()))
            acceptance.add(float(decision.accepted))
            value.add(decision.value)
        return dict(sorted(found.items(), key=lambda item: (item[0] != "treatment", item[0])))

    def groups(self) -> list[GroupFigures]:
        return [
            GroupFigures(name, acceptance.n, acceptance.estimate(), value.estimate())
            for name, (acceptance, value) in self._moments().items()
        ]

    def lifts(self) -> list[Lift]:
        """The treatment's lift over each baseline that has decisions (none without both)."""
        moments = self._moments()
        treatment = moments.get("treatment")
        if treatment is None:
            return []
        value = treatment[1]
        lifts = []
        for name, (_, baseline) in moments.items():
            if name == "treatment" or baseline.n == 0:
                continue
            difference = value.mean - baseline.mean
            variance = value.variance_of_mean + baseline.variance_of_mean
            half = Z95 * math.sqrt(variance)
            absolute = Estimate(difference, difference - half, difference + half)
            lifts.append(Lift(name, absolute, _relative(value, baseline)))
        return lifts


def _relative(treatment: RunningMean, baseline: RunningMean) -> Estimate:
    """(treatment − baseline) / baseline, with the delta method's interval (the two groups are
    independent); undefined (NaN) when the baseline earned nothing."""
    if baseline.mean == 0:
        return Estimate(math.nan, math.nan, math.nan)
    ratio = treatment.mean / baseline.mean
    variance = (
        treatment.variance_of_mean / baseline.mean**2
        + treatment.mean**2 * baseline.variance_of_mean / baseline.mean**4
    )
    half = Z95 * math.sqrt(variance)
    return Estimate(ratio - 1, ratio - 1 - half, ratio - 1 + half)
