"""The middle steps of a decision: one scoring pass, the objective, and the offers it shows.

Under `value-curve`, the default objective, an offer outside its primary period is ranked by
P(accept) as if it were in it, so that the value curve alone counts the phase, while the
decision tells (and the model learns from) the offer as it is now: such offers are scored in
both phases, in the same pass. The other objectives rank each offer as it is now.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.feature_set import Features
from models.candidates import Offers, Scores
from models.ranker import OnlineRanker
from models.time_value import Objective
from pipeline.contracts.schemas import RankedOffer


@dataclass(frozen=True)
class Scoring:
    """One decision's offers as a model scored them."""

    offers: Offers  # as they are now: what the model learns from
    ranked: Scores  # as the objective reads them, best first; `rows` are rows of `offers`
    p_now: np.ndarray  # each offer's P(accept) in the phase it is in now, by row
    scored: Offers  # what was scored: the offers as the objective reads them, then the rest


def score(model: OnlineRanker, offers: Offers, objective: Objective) -> Scoring:
    """Score `offers` as the objective reads them, and as they are now, in one pass."""
    n, phases = len(offers), offers.exposures.phase
    if objective == "value-curve":
        elsewhere = np.array([i for i, phase in enumerate(phases) if phase != "primary"], int)
        scored = offers.take(
            np.concatenate([np.arange(n), elsewhere]),
            phase=["primary"] * n + [phases[i] for i in elsewhere.tolist()],
        )
    else:
        elsewhere, scored = np.zeros(0, int), offers
    scores = model.score(scored)
    p_now = scores.p_accept[:n].copy()
    p_now[elsewhere] = scores.p_accept[n:]
    return Scoring(offers, scores.best_first(of_first=n), p_now, scored)


def best_by_expected_value(scoring: Scoring, expected_worth: np.ndarray) -> str | None:
    """The offer the model's own P(accept) makes worth the most, P(accept) × value × lever
    with the interest phase counted once: what the objective's time weighting (and exploration)
    may have put lower or left out of the decision."""
    ranked = scoring.ranked
    if not len(ranked):
        return None
    rows = ranked.rows
    return ranked.keys[int(np.argmax(scoring.p_now[rows] * expected_worth[rows]))]


def explain(
    model: OnlineRanker,
    scoring: Scoring,
    position: int,
    objective: Objective,
    features_now: Features | None = None,
) -> str:
    """Why the offer at `position` of the ranking came first: its P(accept) as ranked, value
    and lever, and the features that moved its P(accept) most (`features_now`: its features as
    it is now, if already built: they are what was ranked unless it was ranked as if in its
    primary period)."""
    ranked = scoring.ranked
    row = int(ranked.rows[position])
    phase = scoring.offers.exposures.phase[row]
    as_if_primary = objective == "value-curve" and phase != "primary"
    if features_now is None or as_if_primary:
        features = ranked.candidate(position).all_features()
    else:
        features = features_now
    reasons = ", ".join(f"{name} {weight:+.2f}" for name, weight in model.contributions(features))
    p_accept = "P(accept) in its primary period" if as_if_primary else "P(accept)"
    text = (
        f"{ranked.keys[position]}: {p_accept} {ranked.p_accept[position]:.3f} × value now "
        f"{ranked.value_now[position]:.0f} ({phase} interest) × lever "
        f"{scoring.offers.lever[row]:g}"
    )
    return f"{text}; largest contributions: {reasons}" if reasons else text


def ranked_offers(scoring: Scoring, top: list[int], propensities: list[float]) -> list[RankedOffer]:
    """The offers at positions `top` of the ranking, in that order, as a decision shows them."""
    ranked, phases = scoring.ranked, scoring.offers.exposures.phase
    rows = ranked.rows[top].tolist()
    return [
        RankedOffer(
            offer_id=ranked.keys[position],
            rank=rank,
            score=round(float(ranked.score[position]), 6),
            p_accept=round(float(scoring.p_now[row]), 6),
            value_now=round(float(ranked.value_now[position]), 4),
            phase=phases[row],
            propensity=propensities[position],
        )
        for rank, (position, row) in enumerate(zip(top, rows, strict=True), start=1)
    ]
