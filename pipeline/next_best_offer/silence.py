"""When a shown offer's silence becomes a negative label: once answers that late are rare.

An offer's response window (the DWH's `response_window_hours`) is the longest the bank waits
for an answer. Told only at the window's end, every silence would reach the learner a whole
window after its impression, while accepts arrive as they come: for a window's length the model
would learn an offer's acceptances without its silences, and rate recently shown offers too
high. Answers usually come much sooner than the window allows, so the ranker learns how long
they take (from the impression to an accept, convert or dismiss) and tells a silence once
`quantile` of the answers have come by then. An answer that comes later still, within the
window, is told too, marked late: the learner then learns the positive it is, after the negative
it learned at the horizon (about 1 - `quantile` of the positives are learned twice so).

Delays are counted in bins a quarter of a doubling wide (a horizon is at most 19% longer than
the quantile itself); the horizon is a bin's upper edge, never past the window. Older answers
count half each time `memory` answers have been counted, so the horizon follows a change of
channel; until `min_answers` answers have come, a silence waits for the whole window.

>>> horizon = SilenceHorizon(quantile=0.9, min_answers=10)
>>> window = 48 * 3600.0
>>> horizon.after(window) == window  # nothing answered yet: the whole window
True
>>> for minutes in range(1, 101):  # answers from 1 to 100 minutes after their impression
...     horizon.answered(minutes * 60.0)
>>> 90 * 60 <= horizon.after(window) < 1.19 * 90 * 60
True
>>> horizon.after(3600.0)  # never past an offer's own window
3600.0
>>> SilenceHorizon(quantile=1.0, min_answers=0).after(window) == window  # as the window says
True
>>> horizon
SilenceHorizon(quantile=0.9, answers=100: silence told after 1.5 h)
"""

from __future__ import annotations

import math

FIRST_EDGE = 60.0  # seconds: answers within the first minute share one bin
BIN_RATIO = 2**0.25
BINS = 80  # up to about a year; later answers share the last bin


def _bin(delay: float) -> int:
    if delay <= FIRST_EDGE:
        return 0
    return min(BINS - 1, math.ceil(math.log(delay / FIRST_EDGE) / math.log(BIN_RATIO)))


def _upper_edge(index: int) -> float:
    return FIRST_EDGE * BIN_RATIO**index


class SilenceHorizon:
    """How long after its impression a shown offer's silence is told, learned from the delays
    of the answers."""

    def __init__(
        self, quantile: float = 0.99, min_answers: int = 200, memory: int = 20_000
    ) -> None:
        if not 0 < quantile <= 1:
            raise ValueError(f"quantile must be in (0, 1], not {quantile}")
        if min_answers < 0 or memory < max(1, min_answers):
            raise ValueError(
                f"need 0 <= min_answers <= memory, not min_answers={min_answers}, memory={memory}"
            )
        self.quantile = quantile
        self.min_answers = min_answers
        self.memory = memory
        self._counts = [0.0] * BINS
        self._total = 0.0

    def answered(self, delay: float) -> None:
        """An answer came `delay` seconds after its offer was shown."""
        self._counts[_bin(max(0.0, delay))] += 1.0
        self._total += 1.0
        if self._total > self.memory:
            self._counts = [count / 2 for count in self._counts]
            self._total /= 2

    def learned(self) -> float | None:
        """Seconds by which `quantile` of the answers have come; None until `min_answers` have
        (or when `quantile` is 1: the window decides)."""
        if self.quantile >= 1.0 or self._total < max(1, self.min_answers):
            return None
        needed = self.quantile * self._total
        cumulative = 0.0
        for index, count in enumerate(self._counts):
            cumulative += count
            if cumulative >= needed and index < BINS - 1:
                return _upper_edge(index)
        return None  # most answers come later than the last bin: the window decides

    def after(self, window: float) -> float:
        """Seconds after its impression the silence of an offer whose response window is
        `window` seconds is told."""
        learned = self.learned()
        return window if learned is None else min(window, learned)

    def __repr__(self) -> str:
        learned = self.learned()
        told = "at the window's end" if learned is None else f"after {learned / 3600:.1f} h"
        return (
            f"SilenceHorizon(quantile={self.quantile}, answers={self._total:.0f}: "
            f"silence told {told})"
        )
