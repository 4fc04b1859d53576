"""How long nbo's Kafka clients wait, per broker kind, chosen on measurement (`make bench`).

Three waits set a hop's latency and what it costs the broker: how long a consumer's fetch may
wait on the broker (`fetch.wait.max.ms`), how long a producer gathers records into one request
(`linger.ms`), and how long a Quix app's poll waits for a batch (`consumer_poll_timeout`: apps
that read several topics as one stream fill Quix's time-aligned buffer with a batch consume,
which waits for the whole batch or this timeout, so each record can wait this long before it is
processed). Each is a setting (`NBO_FETCH_WAIT_MAX_MS`, `NBO_LINGER_MS`,
`NBO_CONSUMER_POLL_TIMEOUT`); unset, the broker's kind decides. So does the consumer groups'
session timeout (`NBO_SESSION_TIMEOUT_MS`).

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


# Kafka answers a waiting fetch as soon as data arrives (measured on Kafka 4.4 here: one record
# reaches a consumer in 2-5 ms whether it waits 10 or 500 ms), so the fetch wait sets how often
# an idle consumer asks, and how long a restart's state recovery waits at the end of what it
# reads: the real-Kafka failover tests ran in 142 s at 10 ms, 156 s at 100 and 192 s at 500.
# A hop then costs about its producer's linger and its app's poll timeout: the full loop at
# 1,000 events/s on a warm Kafka had p50 33-34 ms / p99 55-77 ms with linger and poll at 5 ms
# and 5 ms (three runs), p50 12-14 ms / p99 27-30 ms at 2 ms and 1 ms (three runs of four; 220
# in the fourth), and went through a backlog at 5,000-5,500 events/s (3,400-5,600 before).
# Lingers of 0-1 ms cost the broker up to twice the CPU per event and made the p99 worse on
# this 2-core machine, where the broker and both μ-products share the cores. The 1 ms poll
# costs an idle app about 0.11 of a core (0.06 at 5 ms: measured with both μ-products idle).
# A ranker's restart (process start, tables, models, join) must fit in the session timeout.
KAFKA_TIMING = ClientTiming(
    fetch_wait_ms=100, linger_ms=2.0, poll_timeout=0.001, session_timeout_ms=15_000
)
# The embedded Tansu (0.6, memory engine) cuts each fetch at its wait, and reading a partition
# costs it about 0.65 µs per record batch the partition holds (measured: a partition of 20,000
# one-record batches gave a consumer waiting 10 ms nothing at all, for ever; 40,000 starved
# 25 ms; 160,000 starved 100 ms). A stream fed by small producer batches grows such a partition
# by one batch per record: at 10 ms, Valid Offers stopped after 17,000-20,000 loop events.
# 100 ms served 80,000 batches and starved at 160,000; Tansu also answers a waiting fetch only
# when the wait ends, so each hop adds up to this much latency there. It slows down under many
# small produce requests: 5 ms batches keep it fast.
# Tansu lets a consumer join about half the session timeout after it asks, at every start: a
# longer one would slow every start of `make demo` and the suite.
EMBEDDED_TIMING = ClientTiming(
    fetch_wait_ms=100, linger_ms=5.0, poll_timeout=0.005, session_timeout_ms=6000
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
