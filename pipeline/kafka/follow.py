"""Following a topic as a table: every partition, from the beginning, in a background thread.

Global tables (offers, rules) and the models topic are not keyed by customer, so a consumer
group would give each instance only some of them. A `TopicFollower` reads every partition of
its topics itself, with no consumer group, and hands each record to `apply` in the thread;
`start` returns once every partition was read to the end it had when the follower started.
A topic whose last few records say all there is to know (`models`) is followed from its tail.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from confluent_kafka import KafkaError, Message

from pipeline.errors import BrokerError
from pipeline.kafka.clients import assigned_from_start
from pipeline.settings import Settings

log = logging.getLogger(__name__)


class TopicFollower:
    """Reads `topics` (real names) from the start for as long as it runs; see the module."""

    def __init__(
        self,
        settings: Settings,
        bootstrap: str,
        topics: list[str],
        apply: Callable[[list[Message]], None],
        name: str,
        tail: int | None = None,
    ) -> None:
        self._settings = settings
        self._bootstrap = bootstrap
        self._topics = topics
        self._apply = apply  # a batch of records, in order per partition
        self._name = name
        self._tail = tail  # read only the last `tail` records of each partition, then follow
        self._loaded = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._failure: BaseException | None = None

    def start(self, timeout: float = 30.0) -> None:
        """Start reading; return once every partition has been read to its end."""
        self._thread.start()
        if not self._loaded.wait(timeout) or self._failure is not None:
            self.stop()
            raise BrokerError(
                f"{self._name}: not read to the end within {timeout:.0f} s "
                f"({self._failure or 'timeout'})"
            )

    @property
    def following(self) -> bool:
        """Read to the end it had at start, and reading still."""
        return self._loaded.is_set() and self._failure is None and self._thread.is_alive()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            consumer = assigned_from_start(
                self._settings,
                self._bootstrap,
                self._topics,
                f"nbo-{self._name}",
                {"enable.partition.eof": True},
                self._tail,
            )
            unread = {(tp.topic, tp.partition) for tp in consumer.assignment()}
        except Exception as error:
            self._failure = error
            self._loaded.set()
            return
        try:
            while not self._stopping.is_set():
                batch = []
                # `poll` returns with the first record, then `consume` takes what else is there;
                # `consume` with a timeout would wait for a whole batch or the timeout, and a
                # request waiting on this follower (the gateway's) would wait as long
                first = consumer.poll(0.2)
                arrived = [] if first is None else [first, *consumer.consume(1000, timeout=0)]
                for message in arrived:
                    problem = message.error()
                    if problem is None:
                        batch.append(message)
                    elif problem.code() == KafkaError._PARTITION_EOF:
                        unread.discard((message.topic(), message.partition()))
                    else:
                        log.warning("%s: %s", self._name, problem)
                if batch:
                    self._apply(batch)
                if not unread and not self._loaded.is_set():
                    self._loaded.set()
        except Exception as error:  # say so: a follower that dies silently serves stale data
            log.exception("%s stopped reading: %s", self._name, error)
            self._failure = error
            raise
        finally:
            consumer.close()
