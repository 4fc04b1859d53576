"""How well a feature set and model can learn a simulated world from unbiased labels.

python -m benchmarks.learnability                                   # households, every feature set
python -m benchmarks.learnability --world bank --feature-sets default --labels 5000 20000
python -m benchmarks.learnability --feature-sets pipeline.simulation.households:STRUCTURE  # ceiling

The closed loop (`nbo demo`) mixes what the model can learn with what the loop shows it, when
the labels arrive and what the contact policy leaves to choose from. This takes the loop away:
each label is one customer, one offer and one interest phase drawn at random, answered with the
world's hidden P(accept), as from a channel that explores uniformly and answers at once. After
each number of labels, the model picks for held-out customers the offer with the highest
P(accept) × what an acceptance earns (`channel.earned`, the best choice's objective), each
offer in a random phase, and the figure is the share of the best choice's expected value it
got. `--skip-best K` drops each
customer's K best offers first, as a contact policy does once it has shown them: what is left
differs less, so the same errors cost more.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from benchmarks.record import write_result
from features import Exposure, FeatureSet, Moment, make_feature_set
from features.feature_set import DecisionParts, Features, merged
from models.names import DEFAULT_MODEL
from models.ranker import OnlineRanker, make_ranker
from models.time_value import Phase, TimeValueProfile
from pipeline.simulation import channel
from pipeline.simulation.worlds import SimulatedWorld, make_world

# the closed loop's mix of candidates' phases, roughly: most in a primary period
PHASES: tuple[Phase, ...] = ("primary",) * 8 + ("secondary",) * 5 + ("irrelevant",) * 2
_MOMENT = Moment("app_login", "mobile_app", datetime(2026, 3, 2, 9, tzinfo=UTC))


@dataclass(frozen=True)
class Draw:
    customer: dict[str, Any]
    offer: dict[str, Any]
    phase: Phase


class Probe:
    """One world, one feature set and one model, fed unbiased labels and asked to pick."""

    def __init__(self, world: SimulatedWorld, features: FeatureSet, model: str, seed: int) -> None:
        self.world = world
        self.features = features
        self.ranker: OnlineRanker = make_ranker(model, features=features, seed=seed)
        self.offers = world.offers()
        self.customers = world.customer_records()
        self.labels = 0
        self._rng = random.Random(seed)

    def _x(self, draw: Draw, parts: DecisionParts | None = None) -> Features:
        """`draw`'s features; `parts`: its customer's, when several offers are drawn for them."""
        profile = TimeValueProfile.of(draw.offer)
        days = {
            "primary": profile.primary_interest_days / 2,
            "secondary": profile.primary_interest_days + profile.secondary_interest_days / 2,
        }.get(draw.phase)
        parts = parts or self.features.for_decision(draw.customer, _MOMENT)
        return merged(*parts.parts(draw.offer, Exposure(days, draw.phase, 0, 0)))

    def _truth(self, draw: Draw) -> float:
        offer = draw.offer
        return self.world.p_accept(
            draw.customer["customer_id"], offer["offer_id"], offer["category"], draw.phase, 0
        )

    def learn(self, labels: int) -> None:
        """Learn `labels` more labels, each a random customer, offer and phase."""
        rng = self._rng
        for _ in range(labels):
            draw = Draw(rng.choice(self.customers), rng.choice(self.offers), rng.choice(PHASES))
            self.ranker.learn_one(self._x(draw), rng.random() < self._truth(draw))
        self.labels += labels

    def pick_quality(self, decisions: int = 500, skip_best: int = 0, seed: int = 5) -> float:
        """The share of the best choice's expected value the model's picks got, over
        `decisions` held-out draws (the same for a seed), without each one's `skip_best` best."""
        rng = random.Random(seed)
        got = best = 0.0
        for _ in range(decisions):
            customer = rng.choice(self.customers)
            parts = self.features.for_decision(customer, _MOMENT)
            rows = []
            for offer in self.offers:
                draw = Draw(customer, offer, rng.choice(PHASES))
                worth = channel.earned(offer, draw.phase)
                estimate = self.ranker.p_accept(self._x(draw, parts))
                rows.append((self._truth(draw) * worth, estimate * worth))
            rows.sort(key=lambda row: row[0], reverse=True)
            left = rows[skip_best:]
            best += left[0][0]
            got += max(left, key=lambda row: row[1])[0]
        return got / best if best else 0.0


def learning_curve(
    world: str, feature_set: str, model: str, labels: Sequence[int], skip_best: Sequence[int],
    seed: int = 0, customers: int = 2000,
) -> list[dict[str, Any]]:  # fmt: skip
    """Pick quality after each number of `labels`, for each `skip_best`."""
    probe = Probe(make_world(world, customers, 7), make_feature_set(feature_set), model, seed)
    rows = []
    for count in sorted(labels):
        probe.learn(count - probe.labels)
        for skip in skip_best:
            quality = probe.pick_quality(skip_best=skip)
            rows.append({"world": world, "feature_set": feature_set, "labels": count,
                         "skip_best": skip, "pick_quality": quality})  # fmt: skip
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", default="households")
    parser.add_argument("--feature-sets", nargs="+", default=["default", "every-field"])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--labels", nargs="+", type=int, default=[5000, 20000, 50000])
    parser.add_argument("--skip-best", nargs="+", type=int, default=[0, 4])
    args = parser.parse_args(argv)
    results = []
    print("world        feature set    labels  skip best  share of the best choice's value")
    for name in args.feature_sets:
        for row in learning_curve(args.world, name, args.model, args.labels, args.skip_best):
            results.append(row)
            print(f"{row['world']:<12} {name:<13} {row['labels']:>7}  {row['skip_best']:>9}  "
                  f"{row['pick_quality']:.3f}", flush=True)  # fmt: skip
    out = write_result("learnability", results, model=args.model)
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
