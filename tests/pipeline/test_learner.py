"""The learner's core without a broker: each label learned once, snapshots that resume exactly,
the challenger learned beside the champion and estimated off-policy."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from models.ranker import make_ranker
from models.snapshot import decode_model
from pipeline.contracts.schemas import Feedback, ModelRole
from pipeline.learner.processor import Learner
from tests.factories import START

CARD = {"bias": 1.0, "category=card": 1.0}
LOAN = {"bias": 1.0, "category=loan": 1.0}


def told(decision: int, offer: str = "a", **fields: Any) -> Feedback:
    """A feedback record as a ranker tells it: offer `offer` of decision `decision`."""
    accepted = fields.pop("label", decision % 3 == 0)
    return Feedback(
        decision_id=f"d-{decision}",
        customer_id="C1",
        offer_id=offer,
        rank=fields.pop("rank", 1),
        outcome="accept" if accepted else "no response",
        label=accepted,
        reward=100.0 if accepted else 0.0,
        features=fields.pop("features", CARD if accepted else LOAN),
        feature_set=fields.pop("feature_set", "default/6"),
        p_accept=0.3,
        value_now=100.0,
        propensity=1.0,
        model_version="bayesian_logistic-0",
        decided_at=START,
        resolved_at=fields.pop("resolved_at", START + timedelta(hours=1)),
        **fields,
    )


def test_each_label_is_learned_once_whatever_is_read_again() -> None:
    learner = Learner(make_ranker("logistic"))
    for offset in range(10):
        assert learner.learn(told(offset), "feedback/0", offset)
    assert learner.labels_learned == 10 and learner.champion.n_learned == 10
    # read again from an older offset (a restart that resumed from an older snapshot)
    assert not any(learner.learn(told(offset), "feedback/0", offset) for offset in range(10))
    # told again at a new offset (a ranker's replay after a crash, under at-least-once)
    assert not learner.learn(told(4), "feedback/0", 10)
    # decided with features the champion does not read: measured, not learned
    assert not learner.learn(told(11, feature_set="old/1"), "feedback/0", 11)
    assert learner.learn(told(12), "feedback/1", 0)  # another partition has its own offsets
    assert learner.stats.learned_before == 10 and learner.stats.repeated == 1
    assert learner.stats.other_feature_set == 1
    assert learner.labels_learned == 11 and learner.metrics.labels == 12
    assert learner.learned_offsets == {"feedback/0": 11, "feedback/1": 0}


def test_a_snapshot_resumes_the_model_its_offsets_and_its_count() -> None:
    learner = Learner(make_ranker("logistic"), registry_version="3")
    for offset in range(40):
        learner.learn(told(offset), "feedback/2", offset)
    [snapshot] = learner.snapshots(START)
    assert snapshot.role == ModelRole.CHAMPION and snapshot.model_version == "logistic-40"
    assert snapshot.learned_offsets == {"feedback/2": 39} and snapshot.labels_learned == 40
    assert snapshot.registry_version == "3" and snapshot.feature_set == "default/6"
    assert len(snapshot.model_dump_json()) < 20_000  # a small record

    resumed = Learner.resumed(snapshot)
    assert resumed.champion.p_accept(CARD) == learner.champion.p_accept(CARD)
    assert resumed.champion.p_accept(CARD) > resumed.champion.p_accept(LOAN)
    assert not resumed.learn(told(39), "feedback/2", 39)  # in the snapshot already
    assert resumed.learn(told(40), "feedback/2", 40)
    assert resumed.labels_learned == 41 and resumed.registry_version == "3"


def test_the_challenger_learns_the_same_labels_and_is_estimated_off_policy() -> None:
    learner = Learner(make_ranker("logistic"))
    learner.challenge_with(make_ranker("naive_bayes"), "7")
    shadow = {"propensity": 0.5, "target_probability": 1.0, "target_value": 60.0,
              "predicted_reward": 50.0}  # fmt: skip
    for offset in range(6):
        learner.learn(told(offset, challenger=shadow, challenger_version="7"), "feedback/0", offset)
    learner.learn(told(6, rank=2), "feedback/0", 6)  # not first: no reward, no estimate
    # decided while version 6 was the challenger: learned, but not this challenger's estimate
    learner.learn(told(7, challenger=shadow, challenger_version="6", label=False), "feedback/0", 7)
    assert learner.challenger is not None and learner.challenger.n_learned == 8
    values = learner.metric_values()
    assert values["challenger_rounds"] == 6 and values["labels_learned"] == 8
    # two of six accepted (100 each), weight 1/0.5: IPS = 2 × 200 / 6
    assert values["challenger_ips"] == pytest.approx(400 / 6, rel=1e-6)
    assert values["reward_per_decision"] == pytest.approx(200 / 7)
    _champion, challenger = learner.snapshots(START)
    assert (challenger.role, challenger.registry_version) == (ModelRole.CHALLENGER, "7")
    assert decode_model(challenger.model).version == "naive_bayes-8"
    learner.challenge_with(None, None)
    assert [s.role for s in learner.snapshots(START)] == [ModelRole.CHAMPION]


def test_the_learner_tells_how_late_each_kind_of_label_arrives() -> None:
    learner = Learner(make_ranker("logistic"))
    learner.learn(told(0, label=True), "feedback/0", 0)  # resolved an hour after its decision
    late = START + timedelta(hours=49)  # silence: told once the response window has passed
    learner.learn(told(1, label=False, resolved_at=late), "feedback/0", 1)
    learner.learn(told(2, label=False, resolved_at=START + timedelta(hours=51)), "feedback/0", 2)
    values = learner.metric_values()
    assert values["hours_to_positive_label"] == pytest.approx(1.0)
    assert values["hours_to_negative_label"] == pytest.approx(50.0)


def test_a_late_accept_is_learned_after_its_silence_and_once_however_often_it_is_told() -> None:
    learner = Learner(make_ranker("logistic"))
    assert learner.learn(told(1, label=False), "feedback/0", 0)
    late = told(1, label=True, late=True)
    assert learner.learn(late, "feedback/0", 1)  # the same offer's second label, not a repeat
    assert not learner.learn(late, "feedback/0", 2)  # a ranker's replay tells it again
    assert learner.labels_learned == 2 and learner.stats.repeated == 1
    # its reward goes to its decision's round, which the silence already counted
    assert learner.metrics.rewarded_rounds == 1 and learner.metrics.reward == 100.0
