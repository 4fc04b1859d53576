"""The topics of nbo: one place that says what each is, how it is keyed and kept.

Table-like topics (offers, customers, rules) are compacted: the latest record per key is the
truth, so a new Valid Offers instance can rebuild its tables by reading them from the start.
Every topic is created with explicit `retention.ms` and `retention.bytes` because Quix's stateful
operators read them back and Tansu only reports configs that were set explicitly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka.admin import AdminClient, NewTopic
from pydantic import BaseModel

from pipeline.contracts.schemas import (
    Customer,
    DeadLetter,
    Decision,
    Feedback,
    Interaction,
    JourneyEvent,
    ModelSnapshot,
    Offer,
    Rule,
    ValidOffers,
)
from pipeline.errors import BrokerError, ConfigError
from pipeline.settings import Settings

# The μ-products, by the name of their consumer group (and state directory).
VALID_OFFERS = "valid-offers"
RANKER = "ranker"
LEARNER = "learner"
STAGES: tuple[str, ...] = (VALID_OFFERS, RANKER, LEARNER)


@dataclass(frozen=True)
class TopicSpec:
    logical: str
    key: str
    compacted: bool
    schema: type[BaseModel]  # every record on the topic is one of these (`nbo schema export`)
    description: str
    streamed_by: tuple[str, ...] = ()  # μ-products that read it as a source stream, in order
    live_view: bool = False  # read by the demo's and the steady loop's live views
    partitions: int | None = None  # None: `NBO_TOPIC_PARTITIONS`


_CUSTOMER = "customer_id"
TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec("offers", "offer_id", True, Offer, "offer pool from the DWH batch, latest per offer"),
    TopicSpec(
        "customers", _CUSTOMER, True, Customer, "customer profiles from the CRM, latest wins",
        streamed_by=(VALID_OFFERS,),
    ),
    TopicSpec(
        "events", _CUSTOMER, False, JourneyEvent, "customer-journey events, the triggers",
        streamed_by=(VALID_OFFERS,),
    ),
    TopicSpec("validation_rules", "rule_id", True, Rule, "may an offer be offered at all (CEL)"),
    TopicSpec("eligibilities", "rule_id", True, Rule, "may this customer get this offer (CEL)"),
    TopicSpec(
        "valid_offers", _CUSTOMER, False, ValidOffers, "per event, the offers valid right now",
        streamed_by=(RANKER,), live_view=True,
    ),
    TopicSpec(
        "next_best_offers", _CUSTOMER, False, Decision, "per event, the ranked decision",
        live_view=True,
    ),
    TopicSpec(
        "interactions", _CUSTOMER, False, Interaction, "channel impressions and responses",
        streamed_by=(VALID_OFFERS, RANKER),
    ),
    TopicSpec(
        "feedback", _CUSTOMER, False, Feedback, "per shown offer resolved, its label and context",
        streamed_by=(LEARNER,),
    ),
    # One partition: the snapshots in publishing order, and the learners' lease (see learner/)
    TopicSpec(
        "models", "role", True, ModelSnapshot, "the latest champion and challenger, learned",
        partitions=1,
    ),
    TopicSpec(
        "dead_letter", "source key", False, DeadLetter, "bad records: topic, offset and reason",
        live_view=True,
    ),
)  # fmt: skip

# On `models`, every publish holds every role the learner has (a challenger's withdrawal is
# published as a tombstone with the next champion), so its last records say all there is: a
# reader starts this many from the end rather than at the beginning of a topic that grows by a
# record or two per publish (and that the embedded broker never compacts).
LAST_PUBLISH = 8

TOPIC_NAMES: tuple[str, ...] = tuple(spec.logical for spec in TOPICS)
LOOP_OUTPUTS: tuple[str, ...] = tuple(spec.logical for spec in TOPICS if spec.live_view)


def spec(logical: str) -> TopicSpec:
    for topic in TOPICS:
        if topic.logical == logical:
            return topic
    raise ConfigError(f"unknown topic {logical!r}; known: {', '.join(TOPIC_NAMES)}")


def sources_of(stage: str) -> dict[str, type[BaseModel]]:
    """The topics μ-product `stage` reads as one stream, with their schemas, in table order."""
    return {topic.logical: topic.schema for topic in TOPICS if stage in topic.streamed_by}


def topic_config(topic: TopicSpec, settings: Settings) -> dict[str, str]:
    """Broker configs for `topic`, all explicit (see the module docstring for why)."""
    return {
        "cleanup.policy": "compact" if topic.compacted else "delete",
        "retention.ms": str(-1 if topic.compacted else settings.topic_retention_ms),
        "retention.bytes": str(settings.topic_retention_bytes),
    }


def create_topics(settings: Settings, bootstrap: str, timeout: float = 15.0) -> dict[str, str]:
    """Create every nbo topic that does not exist yet; return `{topic: "created"|"exists"}`."""
    admin = AdminClient(settings.kafka_config(bootstrap))
    new_topics = [
        NewTopic(
            settings.topic_name(topic.logical),
            num_partitions=topic.partitions or settings.topic_partitions,
            replication_factor=settings.topic_replication,
            config=topic_config(topic, settings),
        )
        for topic in TOPICS
    ]
    outcome: dict[str, str] = {}
    for name, future in admin.create_topics(new_topics, request_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
            outcome[name] = "created"
        except Exception as error:
            kafka_error = error.args[0] if error.args else None
            if getattr(kafka_error, "name", lambda: "")() == "TOPIC_ALREADY_EXISTS":
                outcome[name] = "exists"
            else:
                raise BrokerError(f"creating topic {name}: {error}") from error
    _await_listed(admin, list(outcome), timeout)
    return outcome


def _await_listed(admin: AdminClient, names: list[str], timeout: float) -> None:
    """Until every topic is in the broker's metadata: a real Kafka answers a creation before its
    metadata cache lists the topic, and a client that looks it up then would not find it."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        missing = set(names) - admin.list_topics(timeout=max(left, 0.1)).topics.keys()
        if not missing:
            return
        if left <= 0:
            raise BrokerError(
                f"topics not listed {timeout:g} s after creating them: {sorted(missing)}"
            )
        time.sleep(0.05)  # between metadata requests; the loop is bounded by `timeout`


def list_topics(settings: Settings, bootstrap: str, timeout: float = 10.0) -> dict[str, int]:
    """`{topic name: partition count}` for every topic on the broker."""
    admin = AdminClient(settings.kafka_config(bootstrap))
    metadata = admin.list_topics(timeout=timeout)
    return {name: len(meta.partitions) for name, meta in sorted(metadata.topics.items())}
