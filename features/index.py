"""Feature names as column numbers, so that a decision's features are arrays, not dicts.

A `FeatureIndex` gives each feature name it is asked for a column, for good, in this process
(one index per feature set: `index_for`). A model's weights are read into an array over those
columns once per model version (`models.linear_scores`), and a decision's candidates are scored
by gathering from it.

Most of nbo's features are crosses, `a×b` of two simpler names (a segment and an offer, a
customer field and a category). Their columns are kept in a table over the two sides' names,
so the crosses of a whole decision are looked up at once, without writing their names:

>>> index = FeatureIndex()
>>> segments, offers = index.left(["segment=mass"]), index.right(["offer=a", "offer=b"])
>>> columns = index.crossed(segments, offers)
>>> [index.names[column] for column in columns]
['segment=mass×offer=a', 'segment=mass×offer=b']
>>> index.column("segment=mass×offer=b") == int(columns[1])
True
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

import numpy as np

# What an index keeps at most before it starts afresh: a customer field of unbounded
# cardinality (an id in the CRM's attributes) would otherwise grow it, and the models' arrays
# over it, for as long as the process lives
MAX_NAMES = 200_000
MAX_SIDE_NAMES = 20_000

Kept = TypeVar("Kept")


class FeatureIndex:
    """Feature names ↔ columns, and the columns of crosses of two names.

    Once it holds `MAX_NAMES` names, or a side of crosses `MAX_SIDE_NAMES`, the next decision
    (`fresh_if_full`) starts it afresh and its `generation` changes: what was read over the old
    columns (a model's arrays) is read again.
    """

    def __init__(self) -> None:
        self.generation = 0
        self._start()

    def fresh_if_full(self) -> None:
        """Start afresh if full; called before a decision's columns, never during them."""
        if len(self.names) >= MAX_NAMES or max(map(len, self._side_names)) >= MAX_SIDE_NAMES:
            self.generation += 1
            self._start()

    def _start(self) -> None:
        self.names: list[str] = []
        self._columns: dict[str, int] = {}
        # the two sides of crosses: name → its row (left) or column (right) in `_crossed`
        self._sides: tuple[dict[str, int], dict[str, int]] = ({}, {})
        self._side_names: tuple[list[str], list[str]] = ([], [])
        self._crossed = np.full((16, 64), -1, dtype=np.int32)  # left × right → column, -1: none
        # what a feature set looked up for a few values (an offer, a customer's segment and age
        # band, …) kept by them: the names are then formatted once, not once per decision
        self._kept: dict[Hashable, Any] = {}
        # each side's names as features of their own: side number → column
        self._alone: tuple[np.ndarray, np.ndarray] = (
            np.zeros(16, np.int64),
            np.zeros(64, np.int64),
        )

    def __len__(self) -> int:
        return len(self.names)

    def column(self, name: str) -> int:
        """The column of the feature `name` (a new one the first time)."""
        column = self._columns.get(name)
        if column is None:
            column = self._columns[name] = len(self.names)
            self.names.append(name)
        return column

    def columns(self, names: Sequence[str]) -> np.ndarray:
        column = self.column
        return np.array([column(name) for name in names], dtype=np.int64)

    def left(self, names: Sequence[str]) -> np.ndarray:
        """The left-side numbers of `names` in crosses."""
        return self._side(0, names)

    def right(self, names: Sequence[str]) -> np.ndarray:
        """The right-side numbers of `names` in crosses."""
        return self._side(1, names)

    def kept(self, key: Hashable, look_up: Callable[[], Kept]) -> Kept:
        """`look_up()`'s numbers for `key`, looked up once: what this index gives for a few
        names depends on nothing else, until it starts afresh. Only for keys of few values."""
        found = self._kept.get(key)
        if found is None:
            found = self._kept[key] = look_up()
        return found

    def alone(self, side: int, numbers: np.ndarray) -> np.ndarray:
        """The columns of the names of `numbers` (of `left`: side 0, or `right`: side 1) as
        features of their own."""
        return np.asarray(self._alone[side][numbers])

    def crossed(self, left: np.ndarray | int, right: np.ndarray | int) -> np.ndarray:
        """The columns of the features `left×right`, broadcast as NumPy does (a left name and
        many right ones, or a column of left ones and a row of right ones)."""
        found = self._crossed[left, right]
        missing = found < 0
        if missing.any():  # crosses not seen before: their names are written once
            lefts, rights = self._side_names
            left, right = np.broadcast_arrays(left, right)
            pairs = zip(left[missing].tolist(), right[missing].tolist(), strict=True)
            for row, column in set(pairs):
                self._crossed[row, column] = self.column(f"{lefts[row]}×{rights[column]}")
            found = self._crossed[left, right]
        return np.asarray(found)

    def _side(self, side: int, names: Sequence[str]) -> np.ndarray:
        numbers, known = self._sides[side], self._sides[side].get
        ids = []
        for name in names:
            number = known(name)
            if number is None:
                number = numbers[name] = len(self._side_names[side])
                self._side_names[side].append(name)
                self._grow()
                self._alone[side][number] = self.column(name)
            ids.append(number)
        return np.array(ids, dtype=np.int64)

    def _grow(self) -> None:
        """Make the table of crosses big enough for every name on each side (doubling)."""
        need = (len(self._side_names[0]), len(self._side_names[1]))
        shape = self._crossed.shape
        if need[0] <= shape[0] and need[1] <= shape[1]:
            return
        grown = np.full(
            (max(shape[0], 2 * need[0]) if need[0] > shape[0] else shape[0],
             max(shape[1], 2 * need[1]) if need[1] > shape[1] else shape[1]),
            -1,
            dtype=np.int32,
        )  # fmt: skip
        grown[: shape[0], : shape[1]] = self._crossed
        self._crossed = grown
        self._alone = tuple(  # type: ignore[assignment]
            np.concatenate([alone, np.zeros(size - len(alone), np.int64)])
            for alone, size in zip(self._alone, grown.shape, strict=True)
        )


_INDICES: dict[str, FeatureIndex] = {}


def index_for(label: str) -> FeatureIndex:
    """The index of the feature set `label` (`name/version`) in this process."""
    index = _INDICES.get(label)
    if index is None:
        index = _INDICES[label] = FeatureIndex()
    return index
