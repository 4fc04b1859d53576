"""Is a μ-product keeping up? Consumer lag, the age of the oldest unprocessed record, stalls.

A stream that stops making progress without saying so is the worst failure nbo can have, so each
μ-product watches itself from a thread of its own, through the broker rather than its own
bookkeeping (a wedged loop cannot report on itself):

- `GroupProbe` reads what the consumer group has committed and where each source partition ends,
  and the timestamp of the first record not yet processed: lag and age, per partition.
- `StallWatch` (pure) remembers when each partition's committed offset last moved and names the
  partitions that have had records waiting, without moving, for `stall_timeout` seconds.
- `ProgressMonitor` logs a line every `progress_interval` seconds and, on a stall, logs an error
  naming the partitions and stops the app so that it exits non-zero and a supervisor restarts it.

`nbo status` uses the same probe for every μ-product.

On the embedded broker (Tansu 0.6) a partition's end offset is the last batch's base offset + 1,
not the log end: lag there is a lower bound, short by at most the last producer batch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from confluent_kafka import Consumer, TopicPartition

from pipeline.contracts.topics import STAGES, sources_of
from pipeline.errors import StreamStalled
from pipeline.monitoring import metrics
from pipeline.monitoring.server import Probes
from pipeline.settings import Settings

log = logging.getLogger(__name__)

_REQUEST_TIMEOUT = 10.0


@dataclass(frozen=True)
class PartitionLag:
    topic: str  # logical name
    partition: int
    committed: int  # next offset the group will process (the start, if nothing committed)
    end: int  # the partition's end offset as the broker gives it (see `GroupProbe._with_ages`)
    oldest_age: float | None  # seconds since the first unprocessed record was produced

    @property
    def lag(self) -> int:
        return max(0, self.end - self.committed)

    @property
    def name(self) -> str:
        return f"{self.topic}[{self.partition}]"


class GroupProbe:
    """Reads a consumer group's progress on its source topics without joining the group."""

    def __init__(
        self, settings: Settings, bootstrap: str, group: str, sources: Iterable[str]
    ) -> None:
        self.group = group
        self._logical = {settings.topic_name(name): name for name in sources}
        self._real = {name: real for real, name in self._logical.items()}
        self._config = {
            **settings.kafka_config(bootstrap),
            "group.id": group,  # to read its committed offsets; it never subscribes
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
        self._consumer = Consumer(self._config)
        self._partitions: list[TopicPartition] | None = None

    def sample(self) -> list[PartitionLag]:
        """Each source partition's lag; raises when the broker cannot tell. After a failed read
        the probe starts over with a new client: one that lost a broker can keep asking it for
        minutes while the rest of the cluster answers (seen with one of three Kafka brokers
        killed), and then it is the probe, not the app, that cannot make progress."""
        try:
            return self._sample()
        except Exception:
            lost, self._consumer, self._partitions = self._consumer, Consumer(self._config), None
            with contextlib.suppress(Exception):  # closing a client that lost its broker may fail
                lost.close()
            raise

    def _all_partitions(self) -> list[TopicPartition]:
        if self._partitions is None:
            metadata = self._consumer.list_topics(timeout=_REQUEST_TIMEOUT)
            self._partitions = [
                TopicPartition(topic, partition)
                for topic in self._logical
                if topic in metadata.topics
                for partition in sorted(metadata.topics[topic].partitions)
            ]
        return self._partitions

    def _sample(self) -> list[PartitionLag]:
        lags = []
        for tp in self._processed_up_to(self._all_partitions()):
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=_REQUEST_TIMEOUT, cached=False
            )
            start = tp.offset if tp.offset >= 0 else low
            lags.append(PartitionLag(self._logical[tp.topic], tp.partition, start, high, None))
        return self._with_ages(lags)

    def _processed_up_to(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        """Each partition with the next offset to process: what the group committed."""
        return list(self._consumer.committed(partitions, timeout=_REQUEST_TIMEOUT))

    def _with_ages(self, lags: list[PartitionLag]) -> list[PartitionLag]:
        """The produce time of the record at each lagging partition's committed offset.

        Past the last record a transactional producer wrote (exactly-once) is its commit
        marker, an offset that holds no record: a group that has processed everything has
        committed one short of the end. A partition with only markers (or aborted records)
        past its committed offset has nothing waiting: it is given as caught up (its end is
        its committed offset), or an idle exactly-once μ-product would be stopped as stalled."""
        waiting = {(self._real[p.topic], p.partition): p for p in lags if p.lag > 0}
        if not waiting:
            return lags
        self._consumer.assign(
            [TopicPartition(topic, part, p.committed) for (topic, part), p in waiting.items()]
        )
        stamps: dict[tuple[str, int], float] = {}
        no_record: set[tuple[str, int]] = set()  # the reader passed the end, finding none
        deadline = time.monotonic() + _REQUEST_TIMEOUT
        while len(stamps) + len(no_record) < len(waiting) and time.monotonic() < deadline:
            for message in self._consumer.consume(num_messages=len(waiting), timeout=0.5):
                where = (message.topic() or "", message.partition() or 0)
                if message.error() is None and where not in stamps:
                    stamps[where] = message.timestamp()[1] / 1000.0
            unread = [TopicPartition(*key) for key in waiting if key not in stamps]
            for tp in self._consumer.position(unread) if unread else []:
                if tp.offset >= waiting[tp.topic, tp.partition].end:
                    no_record.add((tp.topic, tp.partition))
        self._consumer.unassign()
        now = time.time()
        return [
            PartitionLag(
                p.topic,
                p.partition,
                p.committed,
                p.committed if (key := (self._real[p.topic], p.partition)) in no_record else p.end,
                max(0.0, now - stamps[key]) if key in stamps else None,
            )
            for p in lags
        ]  # fmt: skip

    def close(self) -> None:
        self._consumer.close()


class ReaderProbe(GroupProbe):
    """The progress of a μ-product that reads its sources without a consumer group (the impact
    report reads them from their beginning at each start): the positions it reports after each
    read stand for a group's committed offsets. A reader wedged inside a record reports nothing
    new while records wait, and the watch finds it stalled as it would a group."""

    def __init__(self, settings: Settings, bootstrap: str, stage: str, sources: Iterable[str]):
        super().__init__(settings, bootstrap, f"{settings.consumer_group(stage)}-probe", sources)
        self._positions: dict[tuple[str, int], int] = {}

    def report(self, positions: Iterable[TopicPartition]) -> None:
        """Where the reader is now (called from its own thread; read by the watch's)."""
        self._positions = {(tp.topic, tp.partition): tp.offset for tp in positions}

    def _processed_up_to(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        # a position below 0: nothing read yet there, so the reader is at the partition's start
        at = self._positions
        return [TopicPartition(p.topic, p.partition, at.get((p.topic, p.partition), -1))
                for p in partitions]  # fmt: skip


@dataclass
class StallWatch:
    """When did each partition last move? Which have waited too long without moving?

    >>> watch = StallWatch(stall_timeout=60)
    >>> waiting = [PartitionLag("events", 0, 100, 180, 5.0)]
    >>> watch.observe(waiting, now=0.0)
    []
    >>> watch.observe(waiting, now=61.0)[0].name
    'events[0]'
    >>> watch.observe([PartitionLag("events", 0, 101, 180, 1.0)], now=62.0)  # it moved
    []
    """

    stall_timeout: float
    _last: dict[tuple[str, int], PartitionLag] = field(default_factory=dict)
    _moved_at: dict[tuple[str, int], float] = field(default_factory=dict)

    def observe(self, lags: list[PartitionLag], now: float) -> list[PartitionLag]:
        """The partitions stalled as of `now`; the clock of a partition starts at the first
        look that finds records waiting on it (or finds its offset moved)."""
        stalled = []
        for p in lags:
            key = (p.topic, p.partition)
            last = self._last.get(key)
            self._last[key] = p
            if last is None or last.committed != p.committed or last.lag == 0 or p.lag == 0:
                self._moved_at[key] = now
            elif now - self._moved_at[key] >= self.stall_timeout:
                stalled.append(p)
        return stalled

    def still_for(self, p: PartitionLag, now: float) -> float:
        return now - self._moved_at.get((p.topic, p.partition), now)


def describe(lags: list[PartitionLag]) -> str:
    """One log line: lag and oldest waiting record per partition that has any."""
    waiting = [p for p in lags if p.lag > 0]
    if not waiting:
        return "caught up"
    return ", ".join(
        f"{p.name} lag {p.lag}" + (f" oldest {p.oldest_age:.1f} s" if p.oldest_age else "")
        for p in waiting
    )


class ProgressMonitor:
    """Logs a μ-product's lag at a steady interval; on a stall, says so and stops it."""

    def __init__(
        self,
        probe: GroupProbe,
        stage: str,
        interval: float,
        stall_timeout: float,
        on_stall: Callable[[], None],
        exit_grace: float,
    ) -> None:
        self._probe = probe
        self._stage = stage
        self._interval = interval
        self._watch = StallWatch(stall_timeout)
        self._on_stall = on_stall
        self._exit_grace = exit_grace
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{stage}-progress", daemon=True)
        self.stalled: list[PartitionLag] = []
        self.last_look = time.monotonic()  # the last look that could read the group

    def start(self) -> ProgressMonitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=_REQUEST_TIMEOUT * 3)

    def _run(self) -> None:
        try:
            while not self._stopping.wait(self._interval):
                if self._check():
                    return
        finally:
            self._probe.close()

    def _check(self) -> bool:
        """One look; True once a stall was reported."""
        now = time.monotonic()
        try:
            lags = self._probe.sample()
        except Exception as error:  # the broker may be away for a while: say so, keep watching
            log.warning("%s progress: cannot read lag: %s", self._stage, error)
            if now - self.last_look < self._watch.stall_timeout:
                return False
            # blind for as long as a stall may last: the group's progress cannot be shown
            self.stalled = [PartitionLag("(group offsets unreadable)", -1, 0, 0, None)]
            log.error(
                "%s STALLED: its progress could not be read for %.0f s (%s); stopping so that "
                "a supervisor restarts it",
                self._stage,
                now - self.last_look,
                error,
            )
            return self._stop_stalled()
        self.last_look = now
        log.info("%s progress: %s", self._stage, describe(lags))
        stalled = self._watch.observe(lags, now)
        self._measure(lags, now)
        if not stalled:
            return False
        self.stalled = stalled
        log.error(
            "%s STALLED: no progress for %.0f s with records waiting on %s; stopping so that a "
            "supervisor restarts it",
            self._stage,
            max(self._watch.still_for(p, now) for p in stalled),
            ", ".join(f"{p.name} (committed {p.committed}, end {p.end})" for p in stalled),
        )
        return self._stop_stalled()

    def _measure(self, lags: list[PartitionLag], now: float) -> None:
        """The look's figures as metrics (`pipeline.monitoring.metrics`)."""
        stage = self._stage
        metrics.PROGRESS_LOOK.labels(stage).set(time.time())
        for p in lags:
            where = (stage, p.topic, str(p.partition))
            metrics.CONSUMER_LAG.labels(*where).set(p.lag)
            metrics.OLDEST_WAITING.labels(*where).set(p.oldest_age or 0.0)
            metrics.STILL.labels(*where).set(self._watch.still_for(p, now))  # 0 unless waiting

    def _stop_stalled(self) -> bool:
        metrics.STALLED.labels(self._stage).set(1)
        self._on_stall()
        if self._stopping.wait(self._exit_grace):
            return True
        log.error("%s did not stop within %.0f s of the stall: exiting", self._stage,
                  self._exit_grace)  # fmt: skip
        os._exit(StreamStalled.exit_code)


@contextlib.contextmanager
def watched(
    settings: Settings,
    bootstrap: str,
    stage: str,
    sources: Iterable[str],
    on_stall: Callable[[], None],
    probes: Probes | None = None,
    probe: GroupProbe | None = None,
) -> Iterator[ProgressMonitor]:
    """Watch `stage`'s consumer group on `sources` (or what `probe` reads instead) while the
    block runs: progress logged every `progress_interval` (and given to `probes`), and on a
    stall `on_stall` (which must make the block end). Raises `StreamStalled`, naming the
    partitions, if it stalled."""
    if probe is None:
        probe = GroupProbe(settings, bootstrap, settings.consumer_group(stage), sources)
    monitor = ProgressMonitor(probe, stage, interval=settings.progress_interval,
                              stall_timeout=settings.stall_timeout, on_stall=on_stall,
                              exit_grace=settings.stall_exit_grace)  # fmt: skip
    metrics.STALL_TIMEOUT.labels(stage).set(settings.stall_timeout)
    metrics.STALLED.labels(stage).set(0)
    monitor.start()
    if probes is not None:
        probes.watch(monitor)
    try:
        yield monitor
    finally:
        monitor.stop()
    if monitor.stalled:
        names = ", ".join(p.name for p in monitor.stalled)
        raise StreamStalled(
            f"{stage} made no progress for {settings.stall_timeout:.0f} s with records waiting "
            f"on {names}"
        )


@dataclass(frozen=True)
class GroupLook:
    """Two samples of one μ-product's group, `interval` seconds apart (`nbo status`)."""

    stage: str
    group: str
    before: list[PartitionLag]
    after: list[PartitionLag]

    def partitions(self) -> list[tuple[PartitionLag, int]]:
        """Each partition now, with how many records the group processed between the looks."""
        then = {(p.topic, p.partition): p.committed for p in self.before}
        return [
            (p, p.committed - then.get((p.topic, p.partition), p.committed)) for p in self.after
        ]

    def waiting_without_progress(self) -> list[PartitionLag]:
        return [p for p, moved in self.partitions() if p.lag > 0 and moved == 0]


def stage_probes(settings: Settings, bootstrap: str) -> dict[str, GroupProbe]:
    """A probe on each μ-product's consumer group and source topics."""
    return {
        stage: GroupProbe(settings, bootstrap, settings.consumer_group(stage), sources_of(stage))
        for stage in STAGES
    }


def status(settings: Settings, bootstrap: str, interval: float) -> list[GroupLook]:
    """Look at every μ-product's group twice, `interval` seconds apart."""
    probes = stage_probes(settings, bootstrap)
    try:
        before = {stage: probe.sample() for stage, probe in probes.items()}
        time.sleep(interval)  # the measure itself: progress over a known span of time
        return [
            GroupLook(stage, probe.group, before[stage], probe.sample())
            for stage, probe in probes.items()
        ]
    finally:
        for probe in probes.values():
            probe.close()
