"""How long a shown offer's silence waits: learned from the delays of the answers."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pipeline.next_best_offer.silence import SilenceHorizon
from tests.factories import make_ranker_processor, offer

WINDOW = 48 * 3600.0


def test_the_horizon_is_the_quantile_of_the_answer_delays_rounded_up_to_its_bin() -> None:
    rng = random.Random(5)
    horizon = SilenceHorizon(quantile=0.99)
    delays = sorted(rng.uniform(60, 6 * 3600) for _ in range(5000))
    for delay in delays:
        horizon.answered(delay)
    quantile = delays[int(0.99 * len(delays))]
    assert quantile <= horizon.after(WINDOW) <= 1.19 * quantile
    share_answered_by_then = sum(d <= horizon.after(WINDOW) for d in delays) / len(delays)
    assert share_answered_by_then >= 0.99


def test_until_enough_answers_have_come_a_silence_waits_for_the_whole_window() -> None:
    horizon = SilenceHorizon(quantile=0.9, min_answers=200)
    for _ in range(199):
        horizon.answered(600.0)
    assert horizon.after(WINDOW) == WINDOW
    horizon.answered(600.0)
    assert horizon.after(WINDOW) < 3600


def test_the_horizon_follows_answers_that_come_later_than_they_used_to() -> None:
    horizon = SilenceHorizon(quantile=0.9, min_answers=100, memory=1000)
    for _ in range(2000):
        horizon.answered(300.0)  # the app: within five minutes
    assert horizon.after(WINDOW) < 600
    for _ in range(4000):
        horizon.answered(20 * 3600.0)  # then e-mail: within a day
    assert 20 * 3600 <= horizon.after(WINDOW) < 24 * 3600


def test_answers_later_than_every_bin_keep_the_horizon_at_the_window() -> None:
    horizon = SilenceHorizon(quantile=0.5, min_answers=1)
    horizon.answered(10 * 365 * 86400.0)
    assert horizon.after(WINDOW) == WINDOW


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"quantile": 0.0}, "quantile must be in (0, 1], not 0.0"),
        ({"quantile": 1.5}, "quantile must be in (0, 1], not 1.5"),
        ({"min_answers": 50, "memory": 10}, "need 0 <= min_answers <= memory"),
    ],
)
def test_bad_settings_are_refused(settings: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("]", r"\]")):
        SilenceHorizon(**settings)  # type: ignore[arg-type]


def test_the_ranker_tells_silences_at_the_quantile_its_settings_give(tmp_path: Path) -> None:
    ranker = make_ranker_processor(tmp_path, [offer("a")], silence_quantile=0.8)
    assert ranker.resolver.horizon.quantile == 0.8
    assert make_ranker_processor(tmp_path, [offer("a")]).resolver.horizon.quantile == 0.99
