"""The models a ranker decides with: the latest champion and challenger on the `models` topic.

The learner publishes them; every ranker instance follows the topic as it follows the offers
table, so all instances score with the same model within one publish interval, and a promoted
version reaches them without a restart. Until the first snapshot arrives, a ranker decides
with a fresh model of the settings' kind: every instance alike, and nothing is lost, since the
learner learns the labels of those decisions too. Rankers learn nothing themselves.
"""

from __future__ import annotations

import logging

from confluent_kafka import Message
from pydantic import ValidationError

from models.ranker import OnlineRanker
from models.snapshot import decode_model
from pipeline.contracts.schemas import ModelRole, ModelSnapshot
from pipeline.contracts.topics import LAST_PUBLISH
from pipeline.kafka.follow import TopicFollower
from pipeline.monitoring import metrics
from pipeline.settings import Settings

log = logging.getLogger(__name__)


class ModelFollower:
    """The champion and the challenger this ranker scores with; `apply` takes a snapshot."""

    def __init__(self, settings: Settings) -> None:
        self.model = settings.new_model()  # the champion: decides
        self.registry_version: str | None = None
        self.challenger: OnlineRanker | None = None  # scored in shadow
        self.challenger_version: str | None = None
        self.applied = 0
        self.refused = 0
        self._follower: TopicFollower | None = None

    def apply(self, snapshot: ModelSnapshot) -> None:
        """Decide with the model of `snapshot` from now on (in its role)."""
        model = decode_model(snapshot.model)
        if snapshot.role == ModelRole.CHAMPION:
            if snapshot.registry_version != self.registry_version:
                log.info(
                    "ranker: champion is now registered version %s (%s)",
                    snapshot.registry_version,
                    snapshot.model_version,
                )
            self.model, self.registry_version = model, snapshot.registry_version
            metrics.CHAMPION_PUBLISHED.set(snapshot.published_at.timestamp())
            metrics.CHAMPION_LABELS.set(snapshot.labels_learned)
            if self.challenger is not None and not self._same_features(self.challenger):
                self.challenger = self.challenger_version = None
        elif self._same_features(model):
            self.challenger, self.challenger_version = model, snapshot.registry_version
        self.applied += 1

    def withdraw_challenger(self) -> None:
        self.challenger = self.challenger_version = None

    def _same_features(self, challenger: OnlineRanker) -> bool:
        """A challenger is scored on the champion's candidates, so it must read its features."""
        if challenger.features == self.model.features:
            return True
        log.error(
            "ranker: challenger %s reads feature set %s, the champion %s: not scored in shadow",
            challenger.version,
            challenger.features.label,
            self.model.features.label,
        )
        return False

    # -- following the topic -----------------------------------------------------------------

    def follow(self, settings: Settings, bootstrap: str) -> ModelFollower:
        """Read `models` to its end (the latest models are in force before the first decision),
        then keep following it in a background thread."""
        self._follower = TopicFollower(
            settings,
            bootstrap,
            [settings.topic_name("models")],
            self._apply_batch,
            "models",
            tail=LAST_PUBLISH,
        )
        self._follower.start(timeout=settings.broker_start_timeout)
        return self

    def stop(self) -> None:
        if self._follower is not None:
            self._follower.stop()

    def _apply_batch(self, messages: list[Message]) -> None:
        latest: dict[str, Message] = {}
        for message in messages:  # a batch may hold several of one role: the last one counts
            latest[(message.key() or b"").decode(errors="replace")] = message
        for role, message in latest.items():
            raw = message.value()
            if raw is None:
                if role == ModelRole.CHALLENGER:
                    self.withdraw_challenger()
                continue
            try:
                self.apply(ModelSnapshot.model_validate_json(raw))
            except (ValidationError, ValueError) as error:
                # a snapshot this ranker cannot use: say so, and go on with the model it has
                self.refused += 1
                log.error(
                    "ranker: model snapshot at models offset %s refused: %s",
                    message.offset(),
                    error,
                )
