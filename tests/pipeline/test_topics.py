from types import SimpleNamespace

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from pipeline.contracts.topics import TOPIC_NAMES, _await_listed, create_topics, list_topics
from pipeline.errors import BrokerError
from pipeline.settings import Settings


def _configs(settings: Settings, bootstrap: str, topic: str) -> dict[str, str]:
    admin = AdminClient(settings.kafka_config(bootstrap))
    resource = ConfigResource(ConfigResource.Type.TOPIC, settings.topic_name(topic))
    result = admin.describe_configs([resource])[resource].result(timeout=10)
    return {name: entry.value for name, entry in result.items()}


def test_create_makes_every_topic_with_explicit_configs(settings: Settings, broker: str) -> None:
    outcome = create_topics(settings, broker)
    assert outcome == {settings.topic_name(name): "created" for name in TOPIC_NAMES}
    on_broker = list_topics(settings, broker)
    for name in TOPIC_NAMES:
        expected = 1 if name == "models" else settings.topic_partitions  # one, for its order
        assert on_broker[settings.topic_name(name)] == expected
    offers = _configs(settings, broker, "offers")
    assert offers["cleanup.policy"] == "compact"
    assert {"retention.ms", "retention.bytes"} <= offers.keys()
    events = _configs(settings, broker, "events")
    assert events["cleanup.policy"] == "delete"
    assert events["retention.ms"] == str(settings.topic_retention_ms)
    for table_like in ("customers", "validation_rules", "eligibilities"):
        assert _configs(settings, broker, table_like)["cleanup.policy"] == "compact"


def test_create_is_idempotent(make_settings, broker: str) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(topic_partitions=3)
    create_topics(settings, broker)
    again = create_topics(settings, broker)
    assert set(again.values()) == {"exists"}
    assert list_topics(settings, broker)[settings.topic_name("events")] == 3


class _LaggingMetadata:
    """An admin client whose metadata lists a topic only from the `listed_from`-th call on, as a
    real Kafka's metadata cache can, a moment after the creation was answered."""

    def __init__(self, listed_from: int) -> None:
        self.calls = 0
        self.listed_from = listed_from

    def list_topics(self, timeout: float) -> SimpleNamespace:
        self.calls += 1
        topics = {"t.events": None} if self.calls >= self.listed_from else {}
        return SimpleNamespace(topics=topics)


def test_creating_waits_until_the_topics_are_listed_and_says_which_never_were() -> None:
    lagging = _LaggingMetadata(listed_from=3)
    _await_listed(lagging, ["t.events"], timeout=5.0)  # type: ignore[arg-type]
    assert lagging.calls == 3
    with pytest.raises(BrokerError, match=r"not listed 0\.2 s after creating them: \['t.offers'\]"):
        _await_listed(_LaggingMetadata(listed_from=1), ["t.offers"], timeout=0.2)  # type: ignore[arg-type]
