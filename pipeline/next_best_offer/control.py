"""The control group: a stable share of customers decided by a baseline instead of the model,
under the same rules and contact policy, so that what the model adds can be measured
(`pipeline.impact`).

A customer's group comes from a salted hash of their id, nothing else: it is the same in every
ranker instance, after every restart and rebalance, and raising the share only moves customers
into control (a customer is in control when their hash falls under the share). Within control,
a second hash picks the customer's baseline by the baselines' weights.

>>> groups = ControlGroups(share=0.2, baselines={"random": 1.0, "none": 1.0}, salt="s")
>>> [str(groups.group_of(c)) for c in ("c1", "c2", "c3", "c4")]
['control/random', 'control/none', 'treatment', 'treatment']
>>> wider = ControlGroups(share=0.4, baselines={"random": 1.0, "none": 1.0}, salt="s")
>>> [str(wider.group_of(c)) for c in ("c1", "c2", "c3", "c4")]  # into control, none out
['control/random', 'control/none', 'control/random', 'treatment']
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from models.names import BASELINES, BaselineName
from models.policies import Policy, Ranking
from pipeline.contracts.schemas import GroupName, group_name


@dataclass(frozen=True)
class Group:
    name: GroupName
    baseline: BaselineName | None = None  # who decides a control customer

    def __str__(self) -> str:
        return group_name(self.name, self.baseline)


TREATMENT = Group("treatment")


def _uniform(salt: str, what: str, customer_id: str) -> float:
    """A number in [0, 1) that only the salt, `what` and the customer's id decide."""
    digest = hashlib.blake2b(f"{salt}\x00{what}\x00{customer_id}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big") / 2**64


class ControlGroups:
    """Which customers are in control, and which baseline decides each of them."""

    def __init__(self, share: float, baselines: Mapping[BaselineName, float], salt: str) -> None:
        if not 0.0 <= share <= 1.0:
            raise ValueError("the control share must be within [0, 1]")
        unknown = set(baselines) - set(BASELINES)
        if unknown or not baselines or any(weight <= 0 for weight in baselines.values()):
            raise ValueError(
                f"control baselines are {', '.join(BASELINES)} with weights above 0, "
                f"not {dict(baselines)}"
            )
        self.share = share
        self.salt = salt
        total = sum(baselines.values())
        names = sorted(baselines)  # the same split whatever order the setting lists them in
        self._bounds = np.cumsum([baselines[name] / total for name in names])
        self._names = names

    def group_of(self, customer_id: str) -> Group:
        if _uniform(self.salt, "group", customer_id) >= self.share:
            return TREATMENT
        which = int(np.searchsorted(self._bounds, _uniform(self.salt, "baseline", customer_id),
                                    "right"))  # fmt: skip
        return Group("control", self._names[min(which, len(self._names) - 1)])


class Baseline:
    """How a baseline orders a control customer's showable offers, and each one's probability
    of being first (what the off-policy estimates and the impact report read).

    - `random`: a uniformly random offer first (each 1/n), the rest in random order.
    - `priority`: the business's own priority, value now × lever, without the model.
    - `none`: nothing is shown.

    >>> ranking = Ranking(p_accept=[0.9, 0.1, 0.5], worth=[10.0, 30.0, 20.0])
    >>> Baseline("priority").choose(ranking)
    ([1, 2, 0], [0.0, 1.0, 0.0])
    >>> order, propensities = Baseline("random", seed=1).choose(ranking)
    >>> sorted(order), propensities
    ([0, 1, 2], [0.3333333333333333, 0.3333333333333333, 0.3333333333333333])
    >>> Baseline("none").choose(ranking)
    ([], [])
    """

    def __init__(self, name: BaselineName, seed: int = 0) -> None:
        self.name = name
        self._rng = np.random.default_rng(seed)

    def choose(self, ranking: Ranking) -> tuple[list[int], list[float]]:
        n = len(ranking)
        if n == 0 or self.name == "none":
            return [], []
        if self.name == "random":
            return self._rng.permutation(n).tolist(), [1.0 / n] * n
        worth = np.asarray(ranking.worth)
        order = np.argsort(-worth, kind="stable").tolist()
        best = worth == worth.max()  # exact ties share being first, as greedy's do
        return order, (best / best.sum()).tolist()


class Choosers:
    """Who orders a customer's offers: the exploration policy for the treatment group, the
    customer's baseline in control."""

    def __init__(self, groups: ControlGroups, policy: Policy, seed: int) -> None:
        self.groups = groups
        self.policy = policy
        self._baselines = {name: Baseline(name, seed) for name in BASELINES}

    def choose(self, group: Group, ranking: Ranking) -> tuple[list[int], list[float]]:
        if group.baseline is None:
            return self.policy.choose(ranking)
        return self._baselines[group.baseline].choose(ranking)

    def name(self, group: Group) -> str:
        """What a decision records as its policy."""
        return self.policy.name if group.baseline is None else f"baseline:{group.baseline}"
