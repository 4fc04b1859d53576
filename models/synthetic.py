"""Logged bandit feedback from a known reward model: ground truth for off-policy evaluation.

Contexts are drawn uniformly from a small finite set (segment × age × channel × event), so the
true value of any policy is an exact average over all of them, not another estimate.

>>> bandit = SyntheticBandit(seed=3)
>>> rows = bandit.log(5, logging="uniform")
>>> sorted(rows[0])  # doctest: +NORMALIZE_WHITESPACE
['accepted', 'age', 'channel', 'customer_id', 'event_type', 'offer_id', 'propensity',
 'segment', 'timestamp']
>>> rows[0]["propensity"] == round(1 / len(bandit.offers), 6)
True
>>> 0 < bandit.true_value(bandit.uniform_policy) < bandit.true_value(bandit.best_policy) < 1
True
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

SEGMENTS = ("student", "mass", "affluent", "private")
AGES = (22, 33, 47, 70)
CHANNELS = ("web", "mobile_app", "email")
EVENTS = ("travel_booking", "loan_calculator_view", "large_deposit", "property_search")
CATEGORIES = ("card", "loan", "savings", "investment", "insurance", "mortgage")

Context = dict[str, Any]
# A policy maps a context to a probability for each offer (in `SyntheticBandit.offers` order).
Policy = Callable[[Context], np.ndarray]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-z)))


class SyntheticBandit:
    """Offers, contexts and a true P(accept | context, offer) with the structure nbo's features
    can learn: segment × category, event × category and channel × category effects."""

    def __init__(self, n_offers: int = 8, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.seed = seed
        self.offers = [
            {"offer_id": f"o{i:02d}", "category": CATEGORIES[i % len(CATEGORIES)]}
            for i in range(n_offers)
        ]
        self.contexts: list[Context] = [
            {"segment": s, "age": a, "channel": c, "event_type": e}
            for s, a, c, e in itertools.product(SEGMENTS, AGES, CHANNELS, EVENTS)
        ]
        effects = {
            name: {
                (value, o["offer_id"]): rng.normal(0, scale)
                for value in values
                for o in self.offers
            }
            for name, values, scale in (
                ("segment", SEGMENTS, 0.8),
                ("event_type", EVENTS, 1.2),
                ("channel", CHANNELS, 0.4),
            )
        }
        base = rng.normal(-2.6, 0.3, n_offers)
        self._true = np.array(
            [
                _sigmoid(
                    base
                    + np.array(
                        [
                            sum(effects[name][(context[name], o["offer_id"])] for name in effects)
                            for o in self.offers
                        ]
                    )
                )
                for context in self.contexts
            ]
        )
        self._rng = np.random.default_rng(seed + 1)
        self._index = {id(c): i for i, c in enumerate(self.contexts)}

    def accept_probabilities(self, context: Context) -> np.ndarray:
        """The true P(accept) of every offer in `context` (one of `self.contexts`)."""
        return np.asarray(self._true[self._context_index(context)])

    def _context_index(self, context: Context) -> int:
        index = self._index.get(id(context))
        if index is None:
            key = (context["segment"], context["age"], context["channel"], context["event_type"])
            index = self.contexts.index(dict(zip(self.contexts[0], key, strict=True)))
        return index

    # -- policies with known action probabilities -----------------------------------------

    def uniform_policy(self, context: Context) -> np.ndarray:
        return np.full(len(self.offers), 1.0 / len(self.offers))

    def best_policy(self, context: Context) -> np.ndarray:
        probabilities = np.zeros(len(self.offers))
        probabilities[int(np.argmax(self.accept_probabilities(context)))] = 1.0
        return probabilities

    def worst_policy(self, context: Context) -> np.ndarray:
        probabilities = np.zeros(len(self.offers))
        probabilities[int(np.argmin(self.accept_probabilities(context)))] = 1.0
        return probabilities

    def softmax_policy(self, temperature: float) -> Policy:
        """Prefers offers the truth likes; a logging policy that is not uniform."""

        def policy(context: Context) -> np.ndarray:
            logits = np.log(self.accept_probabilities(context)) / temperature
            weights = np.exp(logits - logits.max())
            return np.asarray(weights / weights.sum())

        return policy

    def true_value(self, policy: Policy) -> float:
        """Exact expected acceptance of `policy`: contexts are uniform over a finite set."""
        return float(np.mean([policy(c) @ self.accept_probabilities(c) for c in self.contexts]))

    # -- logs -------------------------------------------------------------------------------

    def log(
        self,
        n: int,
        logging: str | Policy = "uniform",
        start: datetime = datetime(2026, 11, 1, tzinfo=UTC),
        seed: int | None = None,
    ) -> list[dict[str, Any]]:
        """`n` logged rounds of `logging` ("uniform" or a policy): one row per shown offer.

        Successive calls continue one random sequence; `seed` starts a sequence of its own.
        """
        policy = self.uniform_policy if logging == "uniform" else logging
        assert callable(policy)
        rng = self._rng if seed is None else np.random.default_rng(seed)
        rows = []
        for i in range(n):
            context = self.contexts[int(rng.integers(len(self.contexts)))]
            probabilities = policy(context)
            action = int(rng.choice(len(self.offers), p=probabilities))
            accepted = rng.random() < self.accept_probabilities(context)[action]
            rows.append(
                {
                    "timestamp": (start + timedelta(minutes=7 * i)).isoformat(),
                    "customer_id": f"c{int(rng.integers(10_000)):05d}",
                    **context,
                    "offer_id": self.offers[action]["offer_id"],
                    "accepted": int(accepted),
                    "propensity": round(float(probabilities[action]), 6),
                }
            )
        return rows

    def context_of(self, row: dict[str, Any]) -> Context:
        return self.contexts[self._context_index(row)]
