"""One place that turns Settings into a Quix Streams Application, for every μ-product."""

from __future__ import annotations

import gc
from collections.abc import Iterable
from typing import Any

import orjson
from confluent_kafka import KafkaError
from pydantic import BaseModel
from quixstreams import Application
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.internal_consumer import InternalConsumer
from quixstreams.kafka.configuration import ConnectionConfig
from quixstreams.models.serializers.json import JSONSerializer
from quixstreams.models.topics import Topic
from quixstreams.state.rocksdb import RocksDBOptions

from pipeline.errors import InstanceFenced
from pipeline.kafka.broker import EMBEDDED_CLUSTER_PREFIX
from pipeline.kafka.dead_letters import Origin, Parsed, parse
from pipeline.kafka.instance import Instance
from pipeline.kafka.progress import watched
from pipeline.kafka.timing import client_timing
from pipeline.monitoring import metrics
from pipeline.monitoring.server import Probes
from pipeline.settings import Settings

_MB = 1024 * 1024


def _fields(value: Any) -> dict[str, Any]:
    """A pydantic record nested in an output, as its fields (orjson writes the rest itself)."""
    if isinstance(value, BaseModel):
        return vars(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _output_json(record: BaseModel) -> bytes:
    return orjson.dumps(vars(record), default=_fields)


# The μ-products emit the pydantic models `nbo schema export` publishes. orjson writes their
# fields, about four times faster than pydantic's own serializer on a valid_offers record.
OUTPUT = JSONSerializer(dumps=_output_json)


def use_changelog_topics(settings: Settings, cluster: str) -> bool:
    """Changelogs on a real Kafka; off on the embedded Tansu unless asked for.

    Tansu keeps topics in memory only, so a changelog there cannot outlive the local state it
    backs up; and Tansu 0.6 answers ListOffsets with the last batch's base offset + 1, which
    makes Quix's changelog recovery stop a restarted app (InvalidStoreChangelogOffset).
    """
    if settings.changelog_topics is not None:
        return settings.changelog_topics
    return not cluster.startswith(EMBEDDED_CLUSTER_PREFIX)


class PromptConsumer(InternalConsumer):
    """Quix's consumer, whose batch read returns as soon as a record is there.

    An app reading several topics as one stream fills Quix's time-aligned buffer with
    `consume(n, timeout)`, which librdkafka answers once n records have come or the timeout has
    passed: a record could wait the whole timeout, so the timeout had to be a millisecond or
    two, and an idle app woke up hundreds of times a second to find nothing. Here a read takes
    what is there at once; only when nothing is does it wait, for the first record (librdkafka's
    poll returns when one arrives) or the timeout, and then takes what came with it. So the
    poll timeout only sets how often an idle app looks up from its poll (`pipeline.kafka.timing`).
    """

    def consume(self, num_messages: int = 1, timeout: float | None = None) -> list[Any]:
        ready = super().consume(num_messages, timeout=0)
        if ready or timeout == 0:
            return ready
        first = self.poll(timeout)
        if first is None:
            return []
        return [first, *(super().consume(num_messages - 1, timeout=0) if num_messages > 1 else [])]


class _Application(Application):
    """Quix's Application with the `PromptConsumer` (Quix makes its consumer in this method,
    with these arguments, and offers no other way to give it one)."""

    def _get_internal_consumer(
        self, on_error: Any = None, extra_config_overrides: dict[str, Any] | None = None
    ) -> InternalConsumer:
        return PromptConsumer(
            broker_address=self._config.broker_address,
            consumer_group=self._config.consumer_group,
            auto_offset_reset=self._config.auto_offset_reset,
            auto_commit_enable=False,
            max_partition_buffer_size=self._config.max_partition_buffer_size,
            extra_config={**self._config.consumer_extra_config, **(extra_config_overrides or {})},
            on_error=on_error,
        )


def make_application(
    settings: Settings, bootstrap: str, instance: Instance, cluster: str, **extra: Any
) -> Application:
    """A Quix app for `instance` on `cluster` (its id) with nbo's broker, security, group, state
    and timing settings, and the instance's stable identity (see `pipeline.kafka.instance`)."""
    timing = client_timing(settings, cluster)
    group = settings.consumer_group(instance.stage)
    producer: dict[str, Any] = {"linger.ms": timing.linger_ms}
    if settings.processing_guarantee == "exactly-once":
        producer["transactional.id"] = f"{group}-{instance.id}"
        producer["transaction.timeout.ms"] = settings.transaction_timeout_ms
    return _Application(
        broker_address=ConnectionConfig.from_librdkafka_dict(settings.kafka_config(bootstrap)),
        consumer_group=group,
        auto_offset_reset="earliest",
        commit_interval=settings.commit_interval,
        processing_guarantee=settings.processing_guarantee,
        state_dir=instance.state_dir,
        use_changelog_topics=use_changelog_topics(settings, cluster),
        rocksdb_options=RocksDBOptions(
            block_cache_size=settings.state_cache_mb * _MB,
            write_buffer_size=settings.state_write_buffer_mb * _MB,
            max_write_buffer_number=2,
        ),
        producer_extra_config=producer,
        consumer_extra_config={
            **({"group.instance.id": instance.id} if instance.static else {}),
            "session.timeout.ms": timing.session_timeout_ms,
            "fetch.wait.max.ms": timing.fetch_wait_ms,
        },
        consumer_poll_timeout=timing.poll_timeout,
        loglevel="WARNING",
        **extra,
    )


def freeze_what_lives_as_long_as_the_process() -> int:
    """Collect garbage once, then leave every object alive now out of later collections; returns
    how many objects that is.

    CPython's full collection walks every object it tracks. After start-up a μ-product holds
    90,000 (Valid Offers) to 210,000 (the ranker) that live as long as it does (the functions
    and classes of Quix, River, MLflow and pydantic, the tables, the model), and each full
    collection, every 10 to 40 s under load, paused the stream for 50-180 ms: on a real Kafka,
    much of the slowest 1% of the loop's decisions. After the freeze one takes 3-9 ms.

    What is made later is collected as before; a frozen object that becomes garbage is still
    freed by reference counting, and only a reference cycle among frozen objects would stay:
    at most what start-up made, once, never a growth (`make soak` watches the memory).
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


# Kafka's answers to a process whose instance id a newer process took (static membership,
# transactional id): a consumer fenced by a newer member, a producer fenced by a newer epoch.
_FENCED = {
    KafkaError.FENCED_INSTANCE_ID,
    KafkaError._FENCED,
    KafkaError.PRODUCER_FENCED,
    KafkaError.INVALID_PRODUCER_EPOCH,
}


def _fenced(problem: KafkaError) -> bool:
    """Whether `problem` says another process took this one's identity. librdkafka reports a
    fenced static member as a fatal error (`_FATAL`) that carries the broker's cause only in
    its text."""
    if problem.code() in _FENCED:
        return True
    return problem.code() == KafkaError._FATAL and "group.instance.id" in problem.str()


def _kafka_error(error: BaseException) -> KafkaError | None:
    """The librdkafka error behind an exception of Quix or confluent-kafka, if there is one."""
    found = getattr(error, "error", None)
    if isinstance(found, KafkaError):
        return found
    if error.args and isinstance(error.args[0], KafkaError):
        return error.args[0]
    return None


def run_watched(
    app: Application,
    settings: Settings,
    bootstrap: str,
    instance: Instance,
    sources: Iterable[str],
    probes: Probes | None = None,
) -> None:
    """`app.run()` with its progress watched (and told to `probes`); raises `StreamStalled` if
    it stalled, and `InstanceFenced` if Kafka gave its instance's identity to another process."""
    stage = instance.stage
    freeze_what_lives_as_long_as_the_process()
    try:
        with watched(
            settings, bootstrap, stage, sources, on_stall=lambda: app.stop(fail=True), probes=probes
        ):
            app.run()
    except Exception as error:
        problem = _kafka_error(error)
        if problem is not None and _fenced(problem):
            raise InstanceFenced(
                f"{stage}: another process joined as instance {instance.id!r} and Kafka fenced "
                f"this one ({problem.str()}): two live processes share NBO_INSTANCE_ID="
                f"{instance.id}; give each its own"
            ) from error
        raise


def parsed_sources(
    app: Application, settings: Settings, sources: dict[str, type[BaseModel]], stage: str
) -> StreamingDataFrame:
    """`sources` (logical topic → schema) read as one stream, so each key's records arrive in
    timestamp order across them, each parsed into its schema or replaced by its dead letter."""
    topics = {settings.topic_name(name): name for name in sources}
    streams = [
        app.dataframe(app.topic(name, key_deserializer="str", value_deserializer="bytes"))
        for name in topics
    ]
    sdf = streams[0]
    for stream in streams[1:]:
        sdf = sdf.concat(stream)
    read = {name: metrics.RECORDS_IN.labels(stage, logical) for name, logical in topics.items()}
    metrics.expect_dead_letters(stage, topics)

    def parsed(raw: bytes | None, key: str | None, _timestamp: int, _headers: Any) -> Parsed:
        origin = Origin.of_current_message(key)
        read[origin.topic].inc()
        return parse(raw, key, topics, sources, stage, origin)

    return sdf.apply(parsed, metadata=True)


def output_topic(app: Application, settings: Settings, logical: str) -> Topic:
    """A sink topic of pydantic records, keyed by a string."""
    return app.topic(settings.topic_name(logical), key_serializer="str", value_serializer=OUTPUT)
