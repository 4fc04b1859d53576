import pytest
from pydantic import ValidationError

from pipeline.errors import BrokerError
from pipeline.settings import Settings


def test_environment_variables_with_nbo_prefix_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBO_BROKER_ADDRESS", "kafka-1:9092,kafka-2:9092")
    monkeypatch.setenv("NBO_TOPIC_PARTITIONS", "12")
    settings = Settings()
    assert settings.broker_address == "kafka-1:9092,kafka-2:9092"
    assert settings.topic_partitions == 12
    assert settings.session_timeout_ms is None  # per broker
    assert settings.mlflow_tracking_uri == "sqlite:///mlruns/mlflow.db"


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.topic_prefix = "other"  # type: ignore[misc]


def test_sasl_ssl_settings_pass_through_to_kafka_clients() -> None:
    settings = Settings(
        broker_address="b:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="nbo",
        sasl_password="s3cret",
        ssl_ca_location="/etc/ca.pem",
    )
    assert settings.kafka_config("b:9093") == {
        "bootstrap.servers": "b:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "nbo",
        "sasl.password": "s3cret",
        "ssl.ca.location": "/etc/ca.pem",
    }
    assert "s3cret" not in repr(settings)


def test_invalid_setting_is_rejected() -> None:
    with pytest.raises(ValidationError, match="topic_partitions"):
        Settings(topic_partitions=0)


def test_client_waits_are_chosen_per_broker_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.kafka.broker import EMBEDDED_CLUSTER_PREFIX
    from pipeline.kafka.timing import EMBEDDED_TIMING, KAFKA_TIMING, client_timing

    embedded, kafka = f"{EMBEDDED_CLUSTER_PREFIX}1234", "MkU3OEVBNTcwNTJENDM2Qg"
    assert client_timing(Settings(), embedded) == EMBEDDED_TIMING
    assert client_timing(Settings(), kafka) == KAFKA_TIMING
    # Kafka answers a waiting fetch at once: its hops are cut shorter than Tansu's
    assert KAFKA_TIMING.linger_ms < EMBEDDED_TIMING.linger_ms

    monkeypatch.setenv("NBO_LINGER_MS", "0")
    monkeypatch.setenv("NBO_CONSUMER_POLL_TIMEOUT", "0.02")
    monkeypatch.setenv("NBO_FETCH_WAIT_MAX_MS", "10")
    for cluster in (embedded, kafka):
        timing = client_timing(Settings(), cluster)
        assert (timing.linger_ms, timing.poll_timeout, timing.fetch_wait_ms) == (0.0, 0.02, 10)


def test_a_producer_with_its_linger_set_does_not_ask_the_broker() -> None:
    from pipeline.kafka.clients import producer_config

    # nothing listens on port 9: asking the broker's kind would fail
    settings = Settings(linger_ms=3.0, broker_start_timeout=0.5)
    assert producer_config(settings, "127.0.0.1:9")["linger.ms"] == 3.0
    with pytest.raises(BrokerError, match=r"127\.0\.0\.1:9 did not answer"):
        producer_config(Settings(broker_start_timeout=0.5), "127.0.0.1:9")
