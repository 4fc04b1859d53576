"""The learner's core: every ranker's feedback learned into one model, once each.

A feedback record is learned when its offset is past the last one learned from its partition
(the offsets travel in every snapshot, so a learner restarted from its latest snapshot learns
each record exactly once) and when its (decision, offer, late) was not learned in the recent
past (a ranker replaying after a crash under at-least-once tells a resolved offer again).
Before it is learned, a label scores the P(accept) the ranker had at decision time
(progressive validation), and the first offer's reward scores the challenger's shadow choice
off-policy (IPS, SNIPS, DR). A late accept (one that came after its silence was told) is a
label of its own: learned after the negative, its reward added to its decision's round, not
counted as a round of its own.

The champion learns every label of its own feature set; the challenger, the same labels when it
reads the same features. No broker here: `app.py` feeds records in and publishes snapshots.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from models.evaluation import StreamMetrics
from models.off_policy import LoggedRound, RunningEstimate
from models.ranker import OnlineRanker
from models.snapshot import decode_model, encode_model
from pipeline.contracts.schemas import Feedback, ModelRole, ModelSnapshot

# How many recent labels are remembered to drop a ranker's repeated feedback.
# A ranker repeats at most what it processed since its last commit (seconds of records), so a
# window this long covers it many times over at tens of thousands of labels per second.
RECENT_LABELS = 200_000


@dataclass
class LearnerStats:
    learned: int = 0
    learned_before: int = 0  # at or before the snapshot's offsets: a replay after a restart
    repeated: int = 0  # the same (decision, offer) told again by a ranker
    other_feature_set: int = 0  # decided with features this champion does not read


class Learner:
    """The champion (and challenger) learned from feedback, and how far into it."""

    def __init__(
        self,
        champion: OnlineRanker,
        *,
        learned_offsets: dict[str, int] | None = None,
        labels_learned: int = 0,
        registry_version: str | None = None,
        metrics: StreamMetrics | None = None,
    ) -> None:
        self.champion = champion
        self.registry_version = registry_version
        self.learned_offsets = dict(learned_offsets or {})
        self.labels_learned = labels_learned
        self.challenger: OnlineRanker | None = None
        self.challenger_version: str | None = None
        self.challenger_estimate = RunningEstimate()
        self.metrics = metrics or StreamMetrics()
        self.stats = LearnerStats()
        self._recent: OrderedDict[tuple[str, str, bool], None] = OrderedDict()

    @classmethod
    def resumed(cls, snapshot: ModelSnapshot, metrics: StreamMetrics | None = None) -> Learner:
        """Go on from the champion's latest snapshot: its model, offsets and count."""
        return cls(
            decode_model(snapshot.model),
            learned_offsets=snapshot.learned_offsets,
            labels_learned=snapshot.labels_learned,
            registry_version=snapshot.registry_version,
            metrics=metrics,
        )

    def learn(self, feedback: Feedback, partition: str, offset: int) -> bool:
        """Learn one feedback record read at `offset` of `partition`; whether it was learned."""
        if offset <= self.learned_offsets.get(partition, -1):
            self.stats.learned_before += 1
            return False
        self.learned_offsets[partition] = offset
        told = (feedback.decision_id, feedback.offer_id, feedback.late)
        if told in self._recent:
            self.stats.repeated += 1
            return False
        self._recent[told] = None
        if len(self._recent) > RECENT_LABELS:
            self._recent.popitem(last=False)
        self._measure(feedback)
        if feedback.feature_set != self.champion.features.label:
            self.stats.other_feature_set += 1
            return False
        self.champion.learn_one(feedback.features, feedback.label)
        if self.challenger is not None and feedback.feature_set == self.challenger.features.label:
            self.challenger.learn_one(feedback.features, feedback.label)
        self.labels_learned += 1
        self.stats.learned += 1
        return True

    def _measure(self, feedback: Feedback) -> None:
        after = (feedback.resolved_at - feedback.decided_at).total_seconds() / 3600
        self.metrics.labelled(feedback.p_accept, feedback.label, after_hours=after)
        self.metrics.curve_seen(feedback.offer_id, feedback.features)
        if feedback.rank != 1:
            return
        self.metrics.rewarded(feedback.reward, late=feedback.late)
        shadow = feedback.challenger
        if (
            shadow is not None
            and self.challenger is not None
            and feedback.challenger_version == self.challenger_version  # not a former one's
            and shadow.get("propensity")
        ):
            self.challenger_estimate.update(
                LoggedRound(reward=feedback.reward, matched=False, **shadow)
            )

    # -- the registry's decisions ------------------------------------------------------------

    def continue_from(self, champion: OnlineRanker, registry_version: str) -> None:
        """A promoted version becomes the champion: learning goes on from it."""
        self.champion, self.registry_version = champion, registry_version

    def challenge_with(self, challenger: OnlineRanker | None, version: str | None) -> None:
        """A new challenger (or none), learned from here on; its estimate starts afresh."""
        self.challenger, self.challenger_version = challenger, version
        self.challenger_estimate = RunningEstimate()

    # -- what is published -------------------------------------------------------------------

    def snapshots(self, at: datetime) -> list[ModelSnapshot]:
        """The champion's snapshot and, when there is one, the challenger's."""
        roles = [(ModelRole.CHAMPION, self.champion, self.registry_version)]
        if self.challenger is not None:
            roles.append((ModelRole.CHALLENGER, self.challenger, self.challenger_version))
        return [
            ModelSnapshot(
                role=role,
                model_version=model.version,
                registry_version=registry_version,
                feature_set=model.features.label,
                learned_offsets=dict(self.learned_offsets),
                labels_learned=self.labels_learned,
                published_at=at,
                model=encode_model(model),
            )
            for role, model, registry_version in roles
        ]

    def metric_values(self) -> dict[str, float]:
        """What the MLflow run logs: progressive metrics and the challenger's estimate."""
        values = {**self.metrics.snapshot(), "labels_learned": float(self.labels_learned)}
        challenger = self.challenger_estimate.values()
        if challenger["rounds"]:
            values.update({f"challenger_{name}": value for name, value in challenger.items()})
        return values
