"""The learner's Kafka plumbing: its lease, its reads of `feedback` and `models`, its publishing.

One learner learns at a time. Learners hold a *lease*: each joins the group `<learner>.lease`
on the one-partition `models` topic, and the member the group assigns that partition learns;
the others wait as standbys. When the holder stops, the group hands the partition to a standby
at once; when it dies, after the group's session timeout (`NBO_SESSION_TIMEOUT_MS`).

The topic is the checkpoint: a snapshot holds the model and the feedback offsets it has
learned, so a learner (restarted, or a standby taking over) resumes from the latest champion
on `models` and reads `feedback` from the next offsets on. Under exactly-once (a real Kafka),
snapshot and offsets are committed in one transaction, and a new holder's producer fences the
old one's; otherwise the snapshot is published first and the offsets, which only show the
learner's progress (`nbo status`), are committed after.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)
from pydantic import ValidationError

from pipeline.contracts.schemas import ModelRole, ModelSnapshot
from pipeline.contracts.topics import LAST_PUBLISH, LEARNER
from pipeline.errors import BrokerError, ConfigError
from pipeline.kafka.clients import assigned_from_start, producer_config
from pipeline.kafka.timing import timing_at
from pipeline.settings import Settings

log = logging.getLogger(__name__)

# A snapshot is one record: it must stay within Kafka's default record size (1 MiB).
MAX_SNAPSHOT_BYTES = 1_000_000


# A dead holder's lease passes to a standby (or to its own restart) after this: the lease
# group's members are not static (a holder that stops hands the lease over at once, which a
# static member would not), and the shortest session Kafka allows by default keeps it short.
LEASE_SESSION_MS = 6000


class Lease:
    """Whether this learner is the one that learns (see the module)."""

    def __init__(self, settings: Settings, bootstrap: str) -> None:
        self.held = False
        self._said: set[str] = set()  # the group errors logged so far, each once
        self._session_ms = settings.session_timeout_ms or LEASE_SESSION_MS
        self._consumer = Consumer(
            {
                **settings.kafka_config(bootstrap),
                "group.id": f"{settings.consumer_group(LEARNER)}.lease",
                "enable.auto.commit": False,
                "session.timeout.ms": self._session_ms,
                "heartbeat.interval.ms": max(self._session_ms // 6, 100),
            }
        )
        self._consumer.subscribe(
            [settings.topic_name("models")],
            on_assign=self._assigned,
            on_revoke=self._revoked,
            on_lost=self._revoked,
        )

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        consumer.assign(partitions)
        consumer.pause(partitions)  # the lease is the assignment; its records are not read here
        self.held = bool(partitions)

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.held = False
        consumer.unassign()

    def acquire(self, stopping: Callable[[], bool]) -> bool:
        """Wait until this learner holds the lease (True) or `stopping()` says stop (False)."""
        said = False
        while not self.held:
            if stopping():
                return False
            if not said:
                log.info("learner: standby, waiting for the lease")
                said = True
            self._poll(0.2)
        log.info("learner: holds the lease")
        return True

    def renew(self) -> bool:
        """Keep the membership alive; whether the lease is still held."""
        self._poll(0)
        return self.held

    def _poll(self, timeout: float) -> None:
        """One poll of the group; an error of the group is said (once each), never swallowed: a
        standby that cannot join (say, a session timeout the broker refuses) waits for ever."""
        message = self._consumer.poll(timeout)
        problem = message.error() if message is not None else None
        if problem is None:
            return
        if problem.fatal():
            raise BrokerError(f"learner lease: {problem}")
        if problem.code() == KafkaError.INVALID_SESSION_TIMEOUT:  # will not mend by waiting
            raise ConfigError(
                f"learner lease: the broker refuses NBO_SESSION_TIMEOUT_MS={self._session_ms} "
                "(outside its group.min.session.timeout.ms and group.max.session.timeout.ms)"
            )
        if str(problem) not in self._said:
            self._said.add(str(problem))
            log.error("learner lease: %s", problem)

    def release(self) -> None:
        self._consumer.close()  # leaving the group hands the lease to a standby at once
        self.held = False


def latest_snapshots(settings: Settings, bootstrap: str) -> dict[str, ModelSnapshot]:
    """The latest snapshot per role on `models` (its last publish); a bad one is skipped, said."""
    consumer = assigned_from_start(
        settings,
        bootstrap,
        [settings.topic_name("models")],
        f"{settings.consumer_group(LEARNER)}.restore",
        {"enable.partition.eof": True},
        tail=LAST_PUBLISH,
    )
    latest: dict[str, bytes | None] = {}
    try:
        unread = {tp.partition for tp in consumer.assignment()}
        while unread:
            message = consumer.poll(settings.broker_start_timeout)
            if message is None:
                raise BrokerError("models: not read to the end in time")
            problem = message.error()
            if problem is not None:
                if problem.code() == KafkaError._PARTITION_EOF:
                    unread.discard(message.partition())
                continue
            latest[(message.key() or b"").decode()] = message.value()
    finally:
        consumer.close()
    snapshots = {}
    for role, raw in latest.items():
        if raw is None:
            continue  # deleted: a challenger withdrawn
        try:
            snapshots[role] = ModelSnapshot.model_validate_json(raw)
        except ValidationError as error:
            log.error("learner: the latest %s snapshot is unreadable, not resumed: %s", role, error)
    return snapshots


def feedback_reader(settings: Settings, bootstrap: str, learned: dict[str, int]) -> Consumer:
    """A consumer of every `feedback` partition, from the offset after the last one learned."""
    topic = settings.topic_name("feedback")
    consumer = Consumer(
        {
            **settings.kafka_config(bootstrap),
            "group.id": settings.consumer_group(LEARNER),  # commits show progress; never joins
            "enable.auto.commit": False,
            "isolation.level": "read_committed",  # a ranker's aborted feedback is not learned
            "fetch.wait.max.ms": timing_at(settings, bootstrap).fetch_wait_ms,
        }
    )
    found = consumer.list_topics(topic, timeout=10).topics.get(topic)
    if found is None or found.error is not None:
        consumer.close()
        raise BrokerError(f"topic {topic} does not exist on {bootstrap}; run `nbo topics create`")

    def start(partition: int) -> int:
        last = learned.get(f"{topic}/{partition}")
        return OFFSET_BEGINNING if last is None else last + 1

    consumer.assign([TopicPartition(topic, p, start(p)) for p in found.partitions])
    return consumer


class SnapshotPublisher:
    """Publishes snapshots on `models` with the feedback offsets they hold (see the module)."""

    def __init__(self, settings: Settings, bootstrap: str, reader: Consumer) -> None:
        self._topic = settings.topic_name("models")
        self._reader = reader
        self._transactional = settings.processing_guarantee == "exactly-once"
        config = {
            **producer_config(settings, bootstrap),
            "acks": "all",
            "linger.ms": 0,
            "message.max.bytes": MAX_SNAPSHOT_BYTES + 10_000,
        }
        if self._transactional:
            config["transactional.id"] = f"{settings.consumer_group(LEARNER)}.publisher"
        self._producer = Producer(config)
        if self._transactional:
            self._producer.init_transactions(settings.broker_start_timeout)  # fences the last
        self.published = 0

    def publish(self, snapshots: list[ModelSnapshot], withdrawn: list[ModelRole]) -> bool:
        """Publish `snapshots` and tombstones for `withdrawn` roles; False when one is too big
        to publish (said in the log): nothing is published, the last snapshots stay."""
        records: list[tuple[bytes, bytes | None]] = [
            (s.role.encode(), s.model_dump_json().encode()) for s in snapshots
        ]
        too_big = [
            (key, len(value))
            for key, value in records
            if value is not None and len(value) > MAX_SNAPSHOT_BYTES
        ]
        if too_big:
            for key, size in too_big:
                log.error(
                    "learner: the %s snapshot is %.1f MB, over the %.1f MB a record may hold: "
                    "not published (choose a smaller model, see the README)",
                    key.decode(),
                    size / 1e6,
                    MAX_SNAPSHOT_BYTES / 1e6,
                )
            return False
        records += [(role.encode(), None) for role in withdrawn]
        offsets = _next_offsets(snapshots[0].learned_offsets) if snapshots else []
        if self._transactional:
            self._producer.begin_transaction()
        failures: list[str] = []

        def delivered(error: object, _message: Message) -> None:
            if error is not None:
                failures.append(str(error))

        for key, value in records:
            self._producer.produce(self._topic, key=key, value=value, on_delivery=delivered)
        if self._transactional:
            if offsets:
                self._producer.send_offsets_to_transaction(
                    offsets, self._reader.consumer_group_metadata()
                )
            self._producer.commit_transaction()
        elif self._producer.flush(30) or failures:
            raise BrokerError(f"models: snapshot not delivered ({failures[:3]})")
        elif offsets:
            self._reader.commit(offsets=offsets, asynchronous=False)
        self.published += len(snapshots)
        return True


def _next_offsets(learned: dict[str, int]) -> list[TopicPartition]:
    """Kafka's committed offsets are the next to read: one past each offset learned."""
    offsets = []
    for position, offset in learned.items():
        topic, _, partition = position.rpartition("/")
        offsets.append(TopicPartition(topic, int(partition), offset + 1))
    return offsets
