from confluent_kafka.admin import AdminClient, ConfigResource

from pipeline.contracts.topics import TOPIC_NAMES, create_topics, list_topics
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
