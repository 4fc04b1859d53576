"""The challenger, scored in shadow: what it would have done with the champion's decision.

For the off-policy estimate of the challenger once the outcome is known, each decision keeps
the challenger's probability of putting the champion's first offer first, and its reward model.
The challenger ranks the same candidates (ranking changes nothing in them), with its own policy
of the champion's kind.
"""

from __future__ import annotations

import numpy as np

from models.policies import Policy
from models.ranker import OnlineRanker
from pipeline.next_best_offer.scoring import Scoring


class Shadow:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def score(
        self, challenger: OnlineRanker | None, scoring: Scoring, first: str, propensity: float
    ) -> dict[str, float] | None:
        """The challenger's view of a decision whose first offer `first` the champion put first
        with `propensity` (None without a challenger)."""
        if challenger is None:
            return None
        n = len(scoring.offers)  # what was scored starts with the offers as ranked
        ranked = challenger.score(scoring.scored).best_first(of_first=n)
        _, probabilities = self.policy.choose(challenger.ranking(ranked))
        rewards = ranked.p_accept * ranked.value_now
        logged = ranked.keys.index(first)
        return {
            "propensity": propensity,
            "target_probability": probabilities[logged],
            "target_value": float(np.dot(probabilities, rewards)),
            "predicted_reward": float(rewards[logged]),
        }
