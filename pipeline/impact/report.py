"""What nbo earns: each group's decisions, acceptance and value per decision, and the model's
lift over each baseline of the control group, with 95% intervals.

Every decision counts, with what its labels (`feedback`) have earned so far (`reward`: an
accepted offer's value now) and whether one was accepted. A silence is told late, or never if
the customer does not come back, so leaving out the decisions still waiting would keep the
acceptances and drop the silences; counting them as earning nothing so far is right once their
offers' response windows have passed, and the same for every group before that.

>>> report = ImpactReport()
>>> for i, (group, reward) in enumerate([("treatment", 100.0), ("treatment", 0.0),
...                                      ("treatment", 50.0), ("control/random", 0.0),
...                                      ("control/random", 20.0)]):
...     report.add_decision(f"d{i}", group)
...     report.add_feedback(f"d{i}", accepted=reward > 0, reward=reward)
>>> [(g.name, g.decisions, round(g.value.mean, 1)) for g in report.groups()]
[('treatment', 3, 50.0), ('control/random', 2, 10.0)]
>>> lift = report.lifts()[0]
>>> lift.baseline, round(lift.absolute.mean, 1), round(lift.relative.mean, 1)
('control/random', 40.0, 4.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

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
    accepted: bool = False
    value: float = 0.0


@dataclass
class ImpactReport:
    """The report, kept up to date one decision and one label at a time.

    It keeps the latest `open_decisions` decisions apart, for their labels to find them; an
    older one is folded into its group's figures, and a label that comes for it after that is
    not counted. Labels read before their decision wait for it, as many as `open_decisions`;
    beyond that they are not counted either (`late_labels`).
    """

    open_decisions: int = 200_000
    late_labels: int = 0
    _changes: int = 0  # decisions and labels added: the figures below are of this many
    _figures: tuple[int, dict[str, tuple[RunningMean, RunningMean]]] | None = None
    _open: dict[str, _Decision] = field(default_factory=dict)  # oldest first
    _early: dict[str, list[tuple[bool, float]]] = field(default_factory=dict)
    _folded: dict[str, tuple[RunningMean, RunningMean]] = field(default_factory=dict)

    def add_decision(self, decision_id: str, group: str) -> None:
        self._changes += 1
        self._open[decision_id] = _Decision(group)
        for accepted, reward in self._early.pop(decision_id, []):  # read before their decision
            self.add_feedback(decision_id, accepted, reward)
        if len(self._open) > self.open_decisions:
            oldest = next(iter(self._open))
            self._fold(self._folded, self._open.pop(oldest))

    def add_feedback(self, decision_id: str, accepted: bool, reward: float) -> None:
        self._changes += 1
        decision = self._open.get(decision_id)
        if decision is None:
            if len(self._early) >= self.open_decisions:
                self.late_labels += 1  # of a decision folded already, or never seen
                return
            self._early.setdefault(decision_id, []).append((accepted, reward))
            return
        decision.accepted = decision.accepted or accepted
        decision.value += reward

    @staticmethod
    def _fold(into: dict[str, tuple[RunningMean, RunningMean]], decision: _Decision) -> None:
        acceptance, value = into.setdefault(decision.group, (RunningMean(), RunningMean()))
        acceptance.add(float(decision.accepted))
        value.add(decision.value)

    def _moments(self) -> dict[str, tuple[RunningMean, RunningMean]]:
        """Each group's acceptance and value, over every decision: worked out once per change
        (the groups and the lifts both read them)."""
        if self._figures is None or self._figures[0] != self._changes:
            self._figures = (self._changes, self._all_moments())
        return self._figures[1]

    def _all_moments(self) -> dict[str, tuple[RunningMean, RunningMean]]:
        found = {
            name: (replace(acceptance), replace(value))
            for name, (acceptance, value) in self._folded.items()
        }
        for decision in self._open.values():
            self._fold(found, decision)
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
