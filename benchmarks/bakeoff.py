"""The contextual-bandit bake-off: nbo's exploration policies on classification data.

make bakeoff                                   # or: python -m benchmarks.bakeoff
python -m benchmarks.bakeoff --seeds 1 --policies greedy thompson
python -m benchmarks.bakeoff --seeds 20                # a difference from greedy 2x narrower

The protocol of Bietti, Agarwal and Langford, "A Contextual Bandit Bake-off" (JMLR 2021): a
classification data set is read once, in an order shuffled by the seed; each row is a round, the
classes are the arms, and the reward is 1 for the true class and 0 otherwise. The policy sees
only the reward of the arm it chose, and the model learns from that alone; a full-information
learner, which is told every arm's reward, shows what the same model could reach. The figure is
the progressive mean reward (every round counts, from the first), averaged over the seeds; each
policy is also compared with greedy seed by seed (`paired_difference`).

Everything goes through nbo's public Python API, as in the stream: a feature set gives each arm
the row's features crossed with the arm (one linear model per arm, in one model), the ranker
(`models.ranker.make_ranker`) scores them, a policy (`models.policies.make_policy`) puts one
first, and the ranker learns the outcome. The data sets ship with the installed packages:
`segment` with River (2,310 rows, 7 classes), `digits` with scikit-learn (1,797 rows, 10
classes). Their features are standardised over the whole data set beforehand, as the paper's
data sets are.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from benchmarks.record import write_result
from features import Exposure, Moment, feature_set
from models.candidates import Candidate
from models.names import DEFAULT_MODEL, POLICIES
from models.policies import make_policy
from models.ranker import make_ranker

SEEDS = (0, 1, 2, 3, 4)
FULL_INFORMATION = "full information"
GREEDY = "greedy"
_MOMENT = Moment("bakeoff", "none", datetime(2026, 1, 1, tzinfo=UTC))


@dataclass(frozen=True)
class DataSet:
    name: str
    rows: np.ndarray  # standardised features
    labels: np.ndarray  # class index per row
    feature_names: tuple[str, ...]

    @property
    def arms(self) -> int:
        return int(self.labels.max()) + 1


def _standardised(
    name: str, rows: np.ndarray, labels: np.ndarray, names: tuple[str, ...]
) -> DataSet:
    """The data set with each feature standardised; a constant feature is dropped."""
    std = rows.std(axis=0)
    keep = std > 0
    standardised = (rows[:, keep] - rows[:, keep].mean(axis=0)) / std[keep]
    kept = tuple(n for n, k in zip(names, keep, strict=True) if k)
    return DataSet(name, np.asarray(standardised), labels, kept)


def segment() -> DataSet:
    from river import datasets

    records = list(datasets.ImageSegments())
    names = tuple(records[0][0])
    classes = sorted({label for _, label in records})
    rows = np.array([[x[name] for name in names] for x, _ in records], dtype=float)
    labels = np.array([classes.index(label) for _, label in records])
    return _standardised("segment", rows, labels, names)


def digits() -> DataSet:
    from sklearn.datasets import load_digits

    data = load_digits()
    names = tuple(f"pixel{i}" for i in range(data.data.shape[1]))
    return _standardised("digits", data.data, np.asarray(data.target), names)


DATA_SETS = {"segment": segment, "digits": digits}


@feature_set("bakeoff-arm-crosses", version=1)
def arm_crosses(
    customer: Mapping[str, Any], offer: Mapping[str, Any], moment: Moment, exposure: Exposure
) -> dict[str, float]:
    """The row's features crossed with the arm, and the arm's own bias."""
    arm = offer["offer_id"]
    crossed = {f"{name}×arm={arm}": value for name, value in customer["features"].items()}
    return {f"arm={arm}": 1.0, **crossed}


def run(data: DataSet, policy_name: str, seed: int, model: str = DEFAULT_MODEL) -> float:
    """Progressive mean reward of one pass of `policy_name` (or full information) over `data`."""
    ranker = make_ranker(model, features=arm_crosses, seed=seed)
    full_information = policy_name == FULL_INFORMATION
    policy = make_policy(GREEDY if full_information else policy_name, seed=seed)
    offers = [{"offer_id": str(arm)} for arm in range(data.arms)]
    order = np.random.default_rng(seed).permutation(len(data.rows))
    reward = 0.0
    for index in order:
        customer = {"features": dict(zip(data.feature_names, data.rows[index], strict=True))}
        parts = ranker.features.for_decision(customer, _MOMENT)
        candidates = []
        for offer in offers:
            blocks, own = parts.parts(offer, Exposure())
            candidates.append(Candidate(offer["offer_id"], own, 1.0, blocks=blocks))
        ranked = ranker.rank(candidates)
        first = ranked[policy.choose(ranker.ranking(ranked))[0][0]]
        truth = str(data.labels[index])
        reward += float(first.key == truth)
        for candidate in ranked if full_information else [first]:
            ranker.learn_one(candidate.all_features(), candidate.key == truth)
    return reward / len(order)


def paired_difference(rewards: Sequence[float], baseline: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the per-seed differences `rewards` − `baseline`.

    Each seed fixes the order of the rows, so two policies on one seed differ only by what they
    chose: the per-seed differences say more than the difference of the means. On this bake-off
    one policy's reward moves by ±0.03 from seed to seed, so with 5 seeds a difference under
    about twice its standard error is noise (`--seeds 20` narrows it).

    >>> [round(v, 4) for v in paired_difference([0.80, 0.84, 0.82], [0.79, 0.82, 0.82])]
    [0.01, 0.0058]
    """
    differences = [r - b for r, b in zip(rewards, baseline, strict=True)]
    mean = statistics.fmean(differences)
    if len(differences) < 2:
        return mean, math.nan
    return mean, statistics.stdev(differences) / math.sqrt(len(differences))


def bakeoff(
    data_sets: Sequence[str], policies: Sequence[str], seeds: Sequence[int], model: str
) -> dict[str, dict[str, dict[str, Any]]]:
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for name in data_sets:
        data = DATA_SETS[name]()
        results[name] = {}
        # greedy first: every other policy is compared with it, seed by seed
        ordered = sorted(policies, key=lambda policy: policy != GREEDY)
        for policy in [*ordered, FULL_INFORMATION]:
            started = time.perf_counter()
            rewards = [run(data, policy, seed, model) for seed in seeds]
            figures: dict[str, Any] = {
                "mean reward": statistics.fmean(rewards),
                "per seed": rewards,
                "seconds": time.perf_counter() - started,
            }
            line = f"{name:8} {policy:22} {figures['mean reward']:.3f}"
            if GREEDY in results[name] and policy != GREEDY:
                difference, error = paired_difference(rewards, results[name][GREEDY]["per seed"])
                figures["vs greedy"] = {"difference": difference, "standard error": error}
                line += f"  vs greedy {difference:+.3f} ± {error:.3f}"
            results[name][policy] = figures
            print(f"{line}  (seeds {' '.join(f'{r:.3f}' for r in rewards)})", flush=True)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="+", default=list(DATA_SETS), choices=list(DATA_SETS))
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=list(POLICIES))
    parser.add_argument("--seeds", type=int, default=len(SEEDS), help="how many seeds (0, 1, …)")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    args = parser.parse_args(argv)
    results = bakeoff(args.data, args.policies, list(range(args.seeds)), args.model)
    out = write_result("bakeoff", results, model=args.model, seeds=args.seeds)
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
