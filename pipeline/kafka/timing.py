"""How long nbo's Kafka clients wait, per broker kind, chosen on measurement (`make bench`).

Three waits set a hop's latency and what it costs the broker: how long a consumer's fetch may
wait on the broker (`fetch.wait.max.ms`), how long a producer gathers records into one request
(`linger.ms`), and how long an idle Quix app's poll waits before its loop looks up
(`consumer_poll_timeout`: a poll returns as soon as a record is there, `pipeline.kafka.quix`'s
`PromptConsumer`, so this wait adds no latency; it bounds how late an idle app's checkpoint and
stop are, and how often it wakes up for nothing). Each is a setting (`NBO_FETCH_WAIT_MAX_MS`,
`NBO_LINGER_MS`, `NBO_CONSUMER_POLL_TIMEOUT`); unset, the broker's kind decides. So does the
consumer groups' session timeout (`NBO_SESSION_TIMEOUT_MS`).

>>> from pipeline.settings import Settings
>>> client_timing(Settings(linger_ms=1.0), "a-kafka-cluster-id").linger_ms
1.0
>>> client_timing(Settings(), "a-kafka-cluster-id") == KAFKA_TIMING
True
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.kafka.broker import EMBEDDED_CLUSTER_PREFIX, cluster_id
from pipeline.settings import Settings


@dataclass(frozen=True)
class ClientTiming:
    fetch_wait_ms: int
    linger_ms: float
    poll_timeout: float  # seconds
    # How long a consumer group waits for a member that stopped answering: a restarted static
    # member (`pipeline.kafka.instance`) that rejoins within it keeps its partitions, with no
    # rebalance; one that does not come back loses them after it.
    session_timeout_ms: int = 6000


# Kafka answers a waiting fetch as soon as data arrives, so the fetch wait only sets how often
# an idle consumer asks; a hop costs about its producer's linger. Shorter lingers cost the
# broker CPU it shares with the apps. An idle app wakes up once per poll timeout. A ranker's
# restart (process start, tables, models, join) must fit in the session timeout. The
# measurements behind each value: docs/benchmarks.md, "Client timing".
KAFKA_TIMING = ClientTiming(
    fetch_wait_ms=100, linger_ms=2.0, poll_timeout=0.1, session_timeout_ms=15_000
)
# The embedded Tansu (0.6, memory engine) answers a waiting fetch only when the wait ends, and
# each fetch costs it in proportion to the record batches the partition holds, so a short wait
# starves consumers of a long partition; larger producer batches keep it fast. It lets a
# consumer join about half the session timeout after it asks, at every start. See
# docs/benchmarks.md, "Client timing".
EMBEDDED_TIMING = ClientTiming(
    fetch_wait_ms=100, linger_ms=5.0, poll_timeout=0.1, session_timeout_ms=6000
)


def client_timing(settings: Settings, cluster: str) -> ClientTiming:
    """The waits for every client of nbo on `cluster` (its id): the settings, else per broker."""
    default = EMBEDDED_TIMING if cluster.startswith(EMBEDDED_CLUSTER_PREFIX) else KAFKA_TIMING
    return ClientTiming(
        fetch_wait_ms=settings.fetch_wait_max_ms or default.fetch_wait_ms,
        linger_ms=default.linger_ms if settings.linger_ms is None else settings.linger_ms,
        poll_timeout=settings.consumer_poll_timeout or default.poll_timeout,
        session_timeout_ms=settings.session_timeout_ms or default.session_timeout_ms,
    )


def timing_at(settings: Settings, bootstrap: str) -> ClientTiming:
    """`client_timing` for the cluster at `bootstrap` (asked with one metadata request)."""
    return client_timing(settings, cluster_id(settings, bootstrap))
