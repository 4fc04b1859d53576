"""The learner μ-product: every ranker's feedback in, one model out, on the `models` topic.

Source: `feedback` (every partition: the labels of every ranker instance). Sink: `models`, a
compacted topic holding the latest champion and challenger snapshots, which every ranker
follows; bad records go to `dead_letter`.

    lease ─> resume from the latest champion on `models` (or a fresh model)
    feedback ─> parse ─> Learner (champion, challenger, progressive metrics) ─> models
              └─ bad records ─> dead_letter
    every NBO_MODEL_PUBLISH_INTERVAL seconds and at shutdown: publish; follow the registry

It is the MLflow run of the model: parameters, progressive metrics from the delayed labels and
the challenger's running off-policy estimate over time; at shutdown the review plots and a new
registered version. Promoting a version makes the learner continue from it and publish it.
Run it with `nbo run learner`; a second one started beside it waits as a standby.

It is not a Quix app, unlike the other μ-products: it is one learner for every partition (a
lease, not a partition per instance), it resumes from the feedback offsets recorded in the
model snapshot it publishes (so each label is learned once, whatever the group committed), and
it publishes on a timer rather than per record. It shares their stall watch (`watched`).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import UTC, datetime

from confluent_kafka import Consumer, Message

from pipeline.contracts.schemas import Feedback, ModelRole
from pipeline.contracts.topics import LEARNER, sources_of
from pipeline.kafka.dead_letters import DeadLetterProducer, Origin, parse
from pipeline.kafka.progress import watched
from pipeline.learner.processor import Learner
from pipeline.learner.topics import Lease, SnapshotPublisher, feedback_reader, latest_snapshots
from pipeline.monitoring import metrics
from pipeline.monitoring.server import Probes, serving
from pipeline.review.registry import CHALLENGER, CHAMPION
from pipeline.review.tracking import RunTracker
from pipeline.settings import Settings

log = logging.getLogger(__name__)

STAGE = LEARNER
SOURCES = sources_of(STAGE)


def start_tracking(settings: Settings, learner: Learner) -> RunTracker | None:
    """The learner's MLflow run, with the parameters a reviewer compares runs by."""
    if not settings.mlflow_tracking:
        return None
    return RunTracker(
        settings.mlflow_tracking_uri,
        settings.mlflow_artifacts_dir,
        run_name=f"learner-{time.strftime('%Y%m%d-%H%M%S')}",
        params={
            "model": settings.ranker_model,
            "resumed_from": learner.champion.version,
            "learning_rate": settings.learning_rate,
            "feature_set": learner.champion.features.label,
            "exploration": settings.exploration,
            "epsilon": settings.epsilon,
            "top_k": settings.top_k,
            "publish_interval": settings.model_publish_interval,
            "seed": settings.seed,
        },
        poll_interval=settings.model_poll_interval,
    )


class LearnerLoop:
    """One holder of the lease: learns, publishes, follows the registry, until told to stop."""

    def __init__(
        self,
        settings: Settings,
        learner: Learner,
        reader: Consumer,
        publisher: SnapshotPublisher,
        lease: Lease,
        dead_letters: DeadLetterProducer,
        tracker: RunTracker | None,
    ) -> None:
        self._settings = settings
        self.learner = learner
        self._reader = reader
        self._publisher = publisher
        self._lease = lease
        self._dead_letters = dead_letters
        self._tracker = tracker
        self._source = {settings.topic_name("feedback"): "feedback"}
        metrics.expect_dead_letters(STAGE, self._source)
        self._read = metrics.RECORDS_IN.labels(STAGE, "feedback")
        self._published_at = time.monotonic()
        self._withdrawn: list[ModelRole] = []
        self._published_models: tuple[int, str | None, str | None] | None = None

    def run(self, stop: threading.Event) -> None:
        interval = self._settings.model_publish_interval
        while not stop.is_set():
            for message in self._reader.consume(num_messages=1000, timeout=0.1):
                if message.error() is None:
                    self._learn(message)
            if not self._lease.renew():
                return
            if time.monotonic() - self._published_at >= interval:
                self.follow_registry()
                if self._changed():
                    self.publish()

    def _learn(self, message: Message) -> None:
        key = message.key()
        text = key.decode(errors="replace") if key is not None else None
        topic, partition, offset = message.topic() or "", message.partition(), message.offset()
        origin = Origin(topic, partition, offset, text)
        self._read.inc()
        parsed = parse(message.value(), text, self._source, {"feedback": Feedback}, STAGE, origin)
        if parsed.dead is not None:
            log.warning("dead letter from %s: %s", origin, parsed.dead["reason"])
            self._dead_letters.send(parsed.dead)
            return
        if isinstance(parsed.record, Feedback):
            self.learner.learn(parsed.record, f"{topic}/{partition}", offset or 0)
            metrics.LABELS_LEARNED.inc()

    def _changed(self) -> bool:
        """Whether there is anything new to publish (a quiet loop adds no records)."""
        models = (self.learner.labels_learned, self.learner.registry_version,
                  self.learner.challenger_version)  # fmt: skip
        return models != self._published_models or bool(self._withdrawn)

    def publish(self) -> None:
        snapshots = self.learner.snapshots(datetime.now(UTC))
        if self._publisher.publish(snapshots, self._withdrawn):
            metrics.RECORDS_OUT.labels(STAGE, "models").inc(len(snapshots))
            metrics.MODELS_PUBLISHED.inc()
            self._withdrawn = []
            self._published_models = (self.learner.labels_learned, self.learner.registry_version,
                                      self.learner.challenger_version)  # fmt: skip
        self._published_at = time.monotonic()
        if self._tracker is not None:
            self._tracker.log_metrics(self.learner.metric_values(), self.learner.labels_learned)

    def follow_registry(self) -> None:
        """Continue from a newly promoted champion; learn a new challenger beside it."""
        if self._tracker is None:
            return
        aliases = self._tracker.aliases()
        champion, challenger = aliases.get(CHAMPION), aliases.get(CHALLENGER)
        learner = self.learner
        if champion is not None and champion != learner.registry_version:
            loaded = self._tracker.load(champion)
            if loaded is not None:
                log.info("learner: champion is now version %s (%s)", champion, loaded.version)
                learner.continue_from(loaded, champion)
        if challenger == champion:
            challenger = None
        if challenger != learner.challenger_version:
            loaded = self._tracker.load(challenger) if challenger else None
            learner.challenge_with(loaded, challenger if loaded else None)
            if loaded is None:
                self._withdrawn.append(ModelRole.CHALLENGER)

    def finish(self) -> None:
        """At shutdown: the final snapshot, then the review plots and a registered version."""
        self.publish()
        if self._tracker is None:
            return
        registered = self._tracker.finish(self.learner.champion, self.learner.metrics)
        if registered is not None:
            version, champion = registered
            log.info("learner: model %s registered as version %s", self.learner.champion.version,
                     version)  # fmt: skip
            if champion:  # the first version ever: a restart resumes it rather than reloading it
                self.learner.registry_version = version
                self.publish()


def resume(settings: Settings, bootstrap: str) -> Learner:
    """The learner from the latest champion on `models`, or a fresh one."""
    latest = latest_snapshots(settings, bootstrap).get(ModelRole.CHAMPION)
    if latest is None:
        log.info("learner: no model on the models topic yet: starts a fresh one")
        return Learner(settings.new_model())
    log.info(
        "learner: resumes %s, %d labels learned, from feedback offsets %s",
        latest.model_version,
        latest.labels_learned,
        latest.learned_offsets,
    )
    return Learner.resumed(latest)


def run(settings: Settings, bootstrap: str) -> None:
    """Hold the lease (or wait for it), then learn and publish until SIGTERM or Ctrl-C. A
    learner that loses the lease (its group's coordinator gone longer than the session
    timeout) says so and waits for it again, resuming from the latest snapshot."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda _signum, _frame: stop.set())
    lease = Lease(settings, bootstrap)
    dead_letters = DeadLetterProducer(settings, bootstrap)
    tracker: list[RunTracker | None] = []  # one MLflow run per process, started once it learns
    try:
        with serving(settings, STAGE) as probes:
            _hold_and_learn(settings, bootstrap, lease, dead_letters, tracker, stop, probes)
    finally:
        dead_letters.flush()
        lease.release()


def _hold_and_learn(
    settings: Settings,
    bootstrap: str,
    lease: Lease,
    dead_letters: DeadLetterProducer,
    tracker: list[RunTracker | None],
    stop: threading.Event,
    probes: Probes,
) -> None:
    """While not stopped: wait for the lease, then learn until it is lost."""
    while lease.acquire(stopping=stop.is_set):
        learner = resume(settings, bootstrap)
        if not tracker:
            tracker.append(start_tracking(settings, learner))
        _learn_while_held(settings, bootstrap, learner, lease, dead_letters, tracker[0], stop,
                          probes)  # fmt: skip
        if stop.is_set():
            return
        log.warning("learner: lost the lease: waits for it again (a standby may learn now)")


def _learn_while_held(
    settings: Settings,
    bootstrap: str,
    learner: Learner,
    lease: Lease,
    dead_letters: DeadLetterProducer,
    tracker: RunTracker | None,
    stop: threading.Event,
    probes: Probes,
) -> None:
    """Learn and publish until `stop` or the lease is lost; at a stop, the final snapshot and
    the registered version."""
    reader = feedback_reader(settings, bootstrap, learner.learned_offsets)
    publisher = SnapshotPublisher(settings, bootstrap, reader)  # fences a former holder's
    loop = LearnerLoop(settings, learner, reader, publisher, lease, dead_letters, tracker)
    loop.follow_registry()
    loop.publish()  # every ranker scores with this learner's model from now on
    try:
        with watched(settings, bootstrap, STAGE, SOURCES, on_stall=stop.set, probes=probes):
            loop.run(stop)
    finally:
        if lease.held:
            loop.finish()
        reader.close()
        log.info("learner: stopped learning with model %s (%s)", learner.champion.version,
                 learner.stats)  # fmt: skip
