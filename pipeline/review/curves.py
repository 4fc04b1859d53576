"""Each offer's time curve as the model learned it, beside the documented one, for review.

With the default features (`default/6`, `every-field/4`), P(accept) outside the primary period
starts at the documented curve's share (an offset in the model) and each offer's phase weights
correct it from the labels: its own (`phase=…×offer=…`), its category's and every offer's. An
offer's learned share in a phase is the odds of accepting it there against its primary period,
the days since the trigger aside: the documented share times the corrections.

>>> from models.bayesian_logistic import BayesianLogisticRegression
>>> from models.ranker import OnlineRanker
>>> from features import DEFAULT_FEATURES
>>> model = OnlineRanker(BayesianLogisticRegression(offsets=("documented_curve",)),
...                      DEFAULT_FEATURES)
>>> for i in range(1000):  # accepted 3 times in 10 without a trigger as in its primary period
...     for phase, curve in (("primary", 0.0), ("irrelevant", -2.3)):
...         model.learn_one({"offer=a": 1.0, "category=card": 1.0, f"phase={phase}": 1.0,
...                          f"phase={phase}×offer=a": 1.0, "documented_curve": curve}, i % 10 < 3)
>>> [curve] = learned_curves(model, {("a", "card"): {"primary": 0.0, "irrelevant": -2.3}})
>>> round(curve.documented["irrelevant"], 2), round(curve.learned["irrelevant"], 1)
(0.1, 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from models.ranker import OnlineRanker

PHASES = ("secondary", "irrelevant")  # each against the primary period


@dataclass(frozen=True)
class OfferCurve:
    """An offer's share of its primary period's odds of acceptance, by phase."""

    offer_id: str
    category: str
    documented: dict[str, float]
    learned: dict[str, float]

    @property
    def difference(self) -> float:
        """How far the learned curve is from the documented one: the largest factor between
        them in any phase (1: the same)."""
        return max(
            (
                math.exp(abs(math.log(self.learned[phase]) - math.log(self.documented[phase])))
                for phase in self.learned
            ),
            default=1.0,
        )

    def row(self) -> dict[str, float | str]:
        """As a row of the review's table."""
        row: dict[str, float | str] = {"offer_id": self.offer_id, "category": self.category}
        for phase in self.learned:
            row[f"{phase} documented"] = round(self.documented[phase], 4)
            row[f"{phase} learned"] = round(self.learned[phase], 4)
        row["difference"] = round(self.difference, 3)
        return row


def learned_curves(
    ranker: OnlineRanker, documented: Mapping[tuple[str, str], Mapping[str, float]]
) -> list[OfferCurve]:
    """The curve of each (offer, category) of `documented` (the documented curve's logit-scale
    value in each phase its labels had, `StreamMetrics.documented_curves`), the offers whose
    learned curve differs most first; phases no label had are left out."""
    weights = ranker.weights()

    def phase_weights(phase: str, offer: str, category: str) -> float:
        names = (f"phase={phase}", f"phase={phase}×category={category}",
                 f"phase={phase}×offer={offer}")  # fmt: skip
        return sum(weights.get(name, 0.0) for name in names)

    curves = []
    for (offer, category), seen in documented.items():
        primary = phase_weights("primary", offer, category)
        phases = [phase for phase in PHASES if phase in seen]
        curves.append(
            OfferCurve(
                offer,
                category,
                documented={phase: math.exp(seen[phase]) for phase in phases},
                learned={
                    phase: math.exp(seen[phase] + phase_weights(phase, offer, category) - primary)
                    for phase in phases
                },
            )
        )
    return sorted(curves, key=lambda curve: curve.difference, reverse=True)
