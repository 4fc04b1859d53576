"""What a ranker ranks, and what it returns: candidates in, their scores out as arrays.

A ranker ranks either `Candidate`s, each an offer with its features as dicts (the way a data
scientist writes them), or a decision's `Offers` as columns, whose features the model's feature
set builds (the way the stream decides). Ranking never changes its input, so one input may be
ranked by several models (the champion and, in shadow, the challenger). `Scores` are a model's
scores, one array per quantity in one order, which the exploration policies read as they are;
indexed or iterated, it gives a `Scored` view of one candidate.

>>> scores = Scores.of(
...     [Candidate("a", {}, value_now=10.0), Candidate("b", {}, value_now=30.0, lever=2.0)],
...     p_accept=np.array([0.5, 0.1]),
... )
>>> [(s.key, round(s.score, 3)) for s in scores.best_first()]
[('b', 6.0), ('a', 5.0)]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from features.feature_set import (
    Blocks,
    DecisionParts,
    Exposures,
    FeatureColumns,
    Features,
    FeatureSet,
    merged,
)


@dataclass(slots=True)
class Candidate:
    """One offer to rank: its features, value now and business lever.

    `blocks` are read-only feature dicts it has in common with other candidates (see
    `features.feature_set.DecisionParts`); `features` are its own; a feature is in one part
    only.
    """

    key: str
    features: Features
    value_now: float
    lever: float = 1.0
    blocks: Blocks = ()

    @property
    def worth(self) -> float:
        """What an acceptance earns now: value now × lever (the priority is P(accept) × worth)."""
        return self.value_now * self.lever

    def all_features(self) -> Features:
        """Every feature of the candidate, as one new dict (what the model learns from)."""
        return merged(self.blocks, self.features)


@dataclass(frozen=True)
class Offers:
    """A decision's candidate offers as columns, with the feature set's view of the decision
    (`parts`): what a ranker scores in the stream."""

    keys: list[str]
    records: list[Mapping[str, Any]]  # each offer as the offers table holds it
    exposures: Exposures
    value_now: np.ndarray
    lever: np.ndarray
    parts: DecisionParts
    _columns: dict[int, FeatureColumns | None] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.keys)

    def columns(self, model_features: FeatureSet) -> FeatureColumns | None:
        """The features as columns of `model_features`' index, built once for every model
        that scores these offers (None: the feature set gives dicts only)."""
        index = model_features.index
        if id(index) not in self._columns:
            self._columns[id(index)] = self.parts.columns(self.records, self.exposures, index)
        return self._columns[id(index)]

    def candidate(self, row: int) -> Candidate:
        """Offer `row` as a `Candidate`, its features as dicts."""
        blocks, own = self.parts.parts(self.records[row], self.exposures[row])
        value, lever = float(self.value_now[row]), float(self.lever[row])
        return Candidate(self.keys[row], own, value, lever, blocks)

    def take(self, rows: np.ndarray, phase: list[str] | None = None) -> Offers:
        """The offers at `rows`, in that order; in the phases `phase` if given."""
        picked = rows.tolist()
        exposures = self.exposures.take(rows)
        return Offers(
            [self.keys[row] for row in picked],
            [self.records[row] for row in picked],
            exposures if phase is None else exposures.in_phase(phase),
            self.value_now[rows],
            self.lever[rows],
            self.parts,
        )


class Scores(Sequence["Scored"]):
    """A model's scores of some candidates, as arrays in one order.

    `logit` and `logit_variance` are the logit's mean and posterior variance where the fast path
    worked them out (`models.linear_scores`), None otherwise. `candidate(i)` is the candidate
    of position i with its features as dicts, built when asked for.
    """

    def __init__(
        self,
        keys: list[str],
        p_accept: np.ndarray,
        value_now: np.ndarray,
        worth: np.ndarray,
        score: np.ndarray,
        tie_break: np.ndarray,
        candidate_of: Callable[[int], Candidate],
        rows: np.ndarray,
        logit: np.ndarray | None = None,
        logit_variance: np.ndarray | None = None,
    ) -> None:
        self.keys = keys
        self.p_accept = p_accept
        self.value_now = value_now
        self.worth = worth  # value now × lever
        self.score = score  # the priority: P(accept) × value now × lever
        self.tie_break = tie_break  # between equal priorities: P(accept) × value now
        self.logit = logit
        self.logit_variance = logit_variance
        self._candidate_of = candidate_of  # by row of what was scored
        self.rows = rows  # the row of what was scored at each position

    @classmethod
    def of(
        cls,
        candidates: Sequence[Candidate] | Offers,
        p_accept: np.ndarray,
        logit: np.ndarray | None = None,
        logit_variance: np.ndarray | None = None,
    ) -> Scores:
        """The scores of `candidates` (or offers) whose P(accept) is `p_accept`."""
        if isinstance(candidates, Offers):
            keys, value, lever = candidates.keys, candidates.value_now, candidates.lever
            candidate_of: Callable[[int], Candidate] = candidates.candidate
        else:
            keys = [c.key for c in candidates]
            value = np.array([c.value_now for c in candidates], dtype=float)
            lever = np.array([c.lever for c in candidates], dtype=float)
            candidate_of = candidates.__getitem__
        return cls(
            keys,
            p_accept,
            value_now=value,
            worth=value * lever,
            score=p_accept * value * lever,
            tie_break=p_accept * np.maximum(value, 0.0),
            candidate_of=candidate_of,
            rows=np.arange(len(keys)),
            logit=logit,
            logit_variance=logit_variance,
        )

    def best_first(self, of_first: int | None = None) -> Scores:
        """The same scores by priority, best first (ties: higher P × value, then the order
        given); of the first `of_first` only, if given."""
        at = slice(of_first)
        return self.take(np.lexsort((-self.tie_break[at], -self.score[at])))

    def take(self, order: np.ndarray) -> Scores:
        """The scores at positions `order`, in that order."""
        return Scores(
            [self.keys[i] for i in order.tolist()],
            self.p_accept[order],
            self.value_now[order],
            self.worth[order],
            self.score[order],
            self.tie_break[order],
            self._candidate_of,
            self.rows[order],
            None if self.logit is None else self.logit[order],
            None if self.logit_variance is None else self.logit_variance[order],
        )

    def candidate(self, position: int) -> Candidate:
        return self._candidate_of(int(self.rows[position]))

    @property
    def candidates(self) -> list[Candidate]:
        return [self.candidate(position) for position in range(len(self))]

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, position: int) -> Scored:  # type: ignore[override]
        return Scored(
            self.candidate(position),
            float(self.p_accept[position]),
            float(self.score[position]),
            float(self.tie_break[position]),
        )

    def __iter__(self) -> Iterator[Scored]:
        for position in range(len(self)):
            yield self[position]


@dataclass(slots=True)
class Scored:
    """One candidate as a model scored it."""

    candidate: Candidate
    p_accept: float
    score: float  # the priority: P(accept) × value now × lever
    tie_break: float

    @property
    def key(self) -> str:
        return self.candidate.key

    @property
    def value_now(self) -> float:
        return self.candidate.value_now

    @property
    def lever(self) -> float:
        return self.candidate.lever

    @property
    def worth(self) -> float:
        return self.candidate.worth

    def all_features(self) -> Features:
        return self.candidate.all_features()
