"""The models a ranker decides with, and their safety across restarts.

One owner for: the champion model (learned in the stream, checkpointed with the input offsets
it has learned up to), the label journal that covers a kill between two checkpoints, the
challenger scored in shadow with its running off-policy estimate, and the MLflow run and
registry this instance follows (a promoted champion or a new challenger is picked up without
a restart).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from features import make_feature_set
from models.evaluation import StreamMetrics
from models.off_policy import LoggedRound, RunningEstimate
from models.ranker import OnlineRanker, make_ranker
from models.registry import CHALLENGER, CHAMPION
from models.store import Checkpoint, LabelJournal, load_checkpoint, save_checkpoint
from models.tracking import RunTracker
from pipeline.settings import Settings

log = logging.getLogger(__name__)


class ChampionFollower:
    """The champion and challenger models of one ranker instance, and their persistence."""

    def __init__(
        self,
        settings: Settings,
        checkpoint_path: Path,
        metrics: StreamMetrics,
        tracker: RunTracker | None = None,
    ) -> None:
        self._settings = settings
        self._checkpoint_path = checkpoint_path
        self._metrics = metrics
        self._tracker = tracker
        checkpoint = load_checkpoint(checkpoint_path)
        if checkpoint is None:
            checkpoint = Checkpoint(new_model(settings))
        self.checkpoint = checkpoint
        self._journal = LabelJournal(checkpoint_path.with_name("labels.jsonl"))
        self.challenger: OnlineRanker | None = None
        self.challenger_version: str | None = None
        self.challenger_estimate = RunningEstimate()
        self._saved_at = time.monotonic()
        self._relearn_journal()
        self.follow_registry()

    @property
    def model(self) -> OnlineRanker:
        """The champion: the model that decides and learns."""
        return self.checkpoint.ranker

    @property
    def registry_version(self) -> str | None:
        return self.checkpoint.registry_version

    # -- learning ------------------------------------------------------------------------

    def learned_before(self, position: str, offset: int) -> bool:
        """Whether the label at `offset` of `position` ("topic/partition") is in the model."""
        return offset <= self.checkpoint.learned_offsets.get(position, -1)

    def learn(self, position: str, offset: int, features: dict[str, float], accepted: bool) -> None:
        """Learn one label, champion and challenger, journalled before the input is committed."""
        self.model.learn_one(features, accepted)
        self._journal.append(position, offset, features, accepted)
        if self.challenger is not None:
            self.challenger.learn_one(features, accepted)
        self.checkpoint.learned_offsets[position] = offset

    def rewarded_in_shadow(self, shadow: dict[str, float] | None, reward: float) -> None:
        """The reward of a decision the challenger was scored on: one off-policy round."""
        if shadow is not None and self.challenger is not None:
            self.challenger_estimate.update(LoggedRound(reward=reward, matched=False, **shadow))

    def _relearn_journal(self) -> None:
        """Learn the labels a killed predecessor learned after its last checkpoint."""
        learned = self.checkpoint.learned_offsets
        relearned = 0
        for position, offset, features, accepted in self._journal.unlearned(learned):
            self.model.learn_one(features, accepted)
            learned[position] = max(offset, learned.get(position, -1))
            relearned += 1
        if relearned:
            log.info("ranker: learned %d labels again from the journal", relearned)
            self.save()

    # -- the registry --------------------------------------------------------------------

    def follow_registry(self) -> None:
        """Switch to a newly promoted champion, and to a new challenger, without a restart."""
        if self._tracker is None:
            return
        aliases = self._tracker.aliases()
        champion, challenger = aliases.get(CHAMPION), aliases.get(CHALLENGER)
        if champion is not None and champion != self.checkpoint.registry_version:
            loaded = self._tracker.load(champion)
            if loaded is not None:
                log.info("ranker: champion is now version %s (%s)", champion, loaded.version)
                self.checkpoint.ranker, self.checkpoint.registry_version = loaded, champion
                self.save()  # the journal's labels from here on belong to the new champion
        if challenger == champion:
            challenger = None
        if challenger != self.challenger_version:
            self.challenger = self._tracker.load(challenger) if challenger else None
            if self.challenger is not None and not self._same_features(self.challenger):
                self.challenger = None
            self.challenger_version = challenger if self.challenger else None
            self.challenger_estimate = RunningEstimate()

    def _same_features(self, challenger: OnlineRanker) -> bool:
        """A challenger learns from the champion's labels, so it must read the same features."""
        if challenger.features.label == self.model.features.label:
            return True
        log.error(
            "ranker: challenger %s reads feature set %s, the champion %s: not scored in shadow",
            challenger.version,
            challenger.features.label,
            self.model.features.label,
        )
        return False

    # -- persistence ---------------------------------------------------------------------

    def maybe_checkpoint(self) -> None:
        """Checkpoint and log metrics once per interval; look at the registry on every call
        (the tracker itself asks MLflow at most once per poll interval)."""
        if time.monotonic() - self._saved_at >= self._settings.model_checkpoint_interval:
            self.save()
            self.log_metrics()
        self.follow_registry()

    def log_metrics(self) -> None:
        if self._tracker is None:
            return
        values = self._metrics.snapshot()
        challenger = self.challenger_estimate.values()
        if self.challenger is not None and challenger["rounds"]:
            values.update({f"challenger_{name}": v for name, v in challenger.items()})
        self._tracker.log_metrics(values, step=self._metrics.decisions)

    def finish(self) -> None:
        """On shutdown: checkpoint, then log the final metrics and register the model."""
        self.save()
        if self._tracker is None:
            return
        self.log_metrics()
        registered = self._tracker.finish(self.model, self._metrics)
        if registered is None:
            return
        version, champion = registered
        log.info("ranker: model %s registered as version %s", self.model.version, version)
        if champion:  # a restart resumes this checkpoint rather than reloading the same model
            self.checkpoint.registry_version = version
            self.save()

    def save(self) -> None:
        save_checkpoint(self._checkpoint_path, self.checkpoint)
        self._journal.clear()
        self._saved_at = time.monotonic()


def new_model(settings: Settings) -> OnlineRanker:
    """The unlearned model the settings choose, with the feature set they choose."""
    return make_ranker(
        settings.ranker_model,
        features=make_feature_set(settings.feature_set),
        learning_rate=settings.learning_rate,
        seed=settings.seed,
    )


def start_tracking(settings: Settings) -> RunTracker | None:
    """The ranker's MLflow run, with the parameters a reviewer compares runs by."""
    if not settings.mlflow_tracking:
        return None
    return RunTracker(
        settings.mlflow_tracking_uri,
        settings.mlflow_artifacts_dir,
        run_name=f"ranker-{time.strftime('%Y%m%d-%H%M%S')}",
        params={
            "model": settings.ranker_model,
            "learning_rate": settings.learning_rate,
            "exploration": settings.exploration,
            "epsilon": settings.epsilon,
            "top_k": settings.top_k,
            "channel_daily_limit": settings.channel_daily_limit,
            "default_max_impressions": settings.default_max_impressions,
            "fatigue_share": settings.fatigue_share,
            "feature_set": make_feature_set(settings.feature_set).label,
            "seed": settings.seed,
        },
        poll_interval=settings.model_poll_interval,
    )
