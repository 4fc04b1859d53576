"""The one settings object of nbo, built once at start and passed to whatever needs it.

Every field can be set with an `NBO_`-prefixed environment variable (for example
`NBO_BROKER_ADDRESS=kafka:9092`) or a `.env` file; the CLI sets a few of them from flags.
Stages receive a `Settings`; they never read `os.environ` themselves.

>>> Settings(topic_prefix="t1").topic_name("offers")
't1.offers'
>>> Settings().topic_name("offers")
'nbo.offers'
"""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from features import DEFAULT_FEATURE_SET, FEATURE_SETS
from features.references import check_choice
from models.names import DEFAULT_MODEL, DEFAULT_POLICY, MODELS, POLICIES, BaselineName
from models.time_value import Objective

if TYPE_CHECKING:
    from models.ranker import OnlineRanker

# A built-in name, or a data scientist's own object as `package.module:attribute`
ModelName = Annotated[str, AfterValidator(lambda text: check_choice(text, MODELS, "model"))]
FeatureSetName = Annotated[
    str, AfterValidator(lambda text: check_choice(text, FEATURE_SETS, "feature set"))
]
# A built-in exploration policy's name
PolicyName = Annotated[str, AfterValidator(lambda text: _known(text, POLICIES, "policy"))]


def _known(text: str, names: dict[str, str], what: str) -> str:
    if text not in names:
        raise ValueError(f"unknown {what} {text!r}: choose one of {', '.join(names)}")
    return text


def _random_baseline() -> dict[BaselineName, float]:
    return {"random": 1.0}


SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="NBO_", env_file=".env", extra="ignore", frozen=True
    )

    broker_address: str | None = Field(
        default=None,
        description="Kafka bootstrap servers. Unset: use an embedded broker.",
    )
    embedded_broker: Literal["auto", "kafka", "tansu"] = Field(
        default="auto",
        description="The broker nbo starts when none is configured: a one-node Kafka (needs "
        "Java 17+), Tansu, or auto (Kafka where Java 17+ is present, else Tansu).",
    )
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None

    topic_prefix: str = "nbo"
    topic_partitions: int = Field(default=2, ge=1)
    topic_replication: int = Field(default=1, ge=1)
    topic_retention_ms: int = Field(default=7 * 24 * 3600 * 1000, description="-1 keeps forever")
    topic_retention_bytes: int = Field(default=-1)

    state_dir: Path = Path("state")
    mlflow_tracking_uri: str = "sqlite:///mlruns/mlflow.db"
    mlflow_artifacts_dir: Path = Path("mlruns/artifacts")
    mlflow_tracking: bool = Field(default=True, description="log ranker runs and follow aliases")
    model_poll_interval: float = Field(
        default=5.0, gt=0, description="seconds between looks at the registry's aliases"
    )

    # A checkpoint pauses processing while it flushes the producer and commits offsets. A longer
    # interval pauses less often, but state writes wait in memory until the checkpoint, and
    # after a crash that many seconds of records are processed again (at-least-once).
    commit_interval: float = Field(default=1.0, gt=0, description="seconds between checkpoints")
    # Each process of a μ-product is a stable instance (`pipeline.kafka.instance`): a restart
    # within the session timeout gets its own partitions back, with no rebalance of the others;
    # an instance that does not come back loses them after it.
    instance_id: str | None = Field(
        default=None,
        description="this instance's stable id (a pod name); unset: <hostname>-<free slot>",
    )
    session_timeout_ms: int | None = Field(
        default=None, ge=1000, description="unset: per broker (`pipeline.kafka.timing`)"
    )
    # exactly-once: how long the broker keeps a transaction open before aborting it; it bounds
    # how long a dead instance that does not come back blocks `read_committed` readers (one that
    # comes back aborts it at once). A checkpoint's transaction must fit in it.
    transaction_timeout_ms: int = Field(default=10_000, ge=1000)
    # The clients' waits. Unset: chosen per broker by `pipeline.kafka.timing` (Kafka: poll 100
    # ms, fetch wait 100 ms, linger 2 ms; the embedded broker: 100 ms, 100 ms, 5 ms).
    consumer_poll_timeout: float | None = Field(
        default=None, gt=0, description="seconds an idle app's poll waits before it looks up"
    )
    fetch_wait_max_ms: int | None = Field(default=None, ge=1)
    linger_ms: float | None = Field(default=None, ge=0, description="producer batching delay")
    # RocksDB holds each app's state on disk; these bound what it keeps in memory (Quix's own
    # defaults are a 1 GB block cache and 3 x 64 MB write buffers per partition).
    state_cache_mb: int = Field(default=64, ge=1, description="RocksDB block cache per app")
    state_write_buffer_mb: int = Field(
        default=8, ge=1, description="RocksDB write buffer per state partition (two at most)"
    )
    # exactly-once: each checkpoint's outputs, state changelogs and input offsets in one Kafka
    # transaction (a real Kafka's; the embedded broker's transactions are not to be relied on)
    processing_guarantee: Literal["at-least-once", "exactly-once"] = "at-least-once"
    changelog_topics: bool | None = Field(
        default=None, description="back state up to changelog topics; unset: on for real Kafka"
    )
    broker_start_timeout: float = Field(default=20.0, gt=0)
    # Each μ-product logs its lag every `progress_interval` seconds and stops, exiting non-zero,
    # when records have waited `stall_timeout` seconds on a partition whose committed offset
    # has not moved: longer than a rebalance or a state recovery takes, short enough to page.
    progress_interval: float = Field(default=10.0, gt=0, description="seconds between lag logs")
    stall_timeout: float = Field(default=120.0, gt=0, description="seconds without progress")
    # A stalled μ-product is asked to stop, and exits at once if it has not within this long: a
    # client hung on a broker that left never will, and its restart is what recovers
    stall_exit_grace: float = Field(default=10.0, gt=0, description="seconds to stop if stalled")

    # Prometheus metrics and the probes' endpoints of a μ-product process (pipeline/monitoring):
    # served on this port when set, one per process (the gateway serves its own on its port)
    metrics_port: int | None = Field(default=None, ge=0, le=65535, description="unset: off")
    metrics_host: str = Field(default="127.0.0.1", description="0.0.0.0 for probes from outside")

    # The Next Best Offer μ-product
    ranker_model: ModelName = DEFAULT_MODEL
    feature_set: FeatureSetName = DEFAULT_FEATURE_SET
    learning_rate: float = Field(default=0.15, gt=0, description="SGD step of the `logistic` model")
    exploration: PolicyName = DEFAULT_POLICY
    epsilon: float = Field(default=0.1, ge=0, le=1, description="for epsilon-greedy")
    # What the ranker maximises (models/time_value.py `earned_now`): P(accept) in the offer's
    # primary period × the value curve's value now × lever (value-curve: the interest phase
    # counted once, by the curve), P(accept) × value × lever (expected-value: once, in
    # P(accept); learned-curve: the same, P(accept)'s curve starting as the documented one and
    # learned per offer), or P(accept) × value now × lever (time-weighted: twice).
    # docs/data-science.md has what each gave.
    objective: Objective = "value-curve"
    # value-curve and time-weighted: what an offer outside any interest period (no trigger, or
    # past it) is worth, as a share of its value (0 never shows such offers)
    irrelevant_value_ratio: float = Field(default=0.1, ge=0, le=1)
    # A shown offer's silence is told as a negative label once this share of the answers have
    # come by then (`pipeline.next_best_offer.silence`); 1 waits for each offer's whole
    # response window. Earlier silences keep the model from overrating what it showed lately.
    silence_quantile: float = Field(default=0.99, gt=0, le=1, description="of answer delays")
    top_k: int = Field(default=3, ge=1, description="offers per decision")
    # The control group (pipeline/next_best_offer/control.py): this share of customers, chosen
    # by a salted hash of their id, is decided by a baseline instead of the model, split among
    # the baselines by these weights; `nbo impact` reports what the model adds over each
    control_share: float = Field(default=0.05, ge=0, le=1, description="0: no control group")
    control_baselines: dict[BaselineName, float] = Field(
        default_factory=_random_baseline, description="random, priority, none: weights"
    )
    control_salt: str = Field(default="nbo-control", description="changing it regroups all")
    impact_log_interval: float = Field(default=60.0, gt=0, description="seconds between logs")
    channel_daily_limit: int = Field(default=5, ge=1, description="impressions per channel/day")
    default_max_impressions: int = Field(default=3, ge=1)
    fatigue_share: float = Field(default=0.25, ge=0, le=1)
    # How often the learner publishes its models (and at shutdown): rankers score with a model
    # at most this much older than the labels that have arrived
    model_publish_interval: float = Field(default=5.0, gt=0, description="seconds")
    seed: int = 0

    # The gateway μ-product (`nbo run gateway`, pipeline/gateway): channels over HTTP
    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=8080, ge=0, le=65535, description="0: any free port")
    gateway_socket_fd: int | None = Field(
        default=None,
        description="a listening socket the process that started the gateway bound and "
        "handed down (the demo's), served instead of gateway_host:gateway_port",
    )
    gateway_keys_file: Path = Field(
        default=Path("gateway-keys.json"), description="the channels' API keys, hashed"
    )
    gateway_rate: float = Field(default=200.0, gt=0, description="requests/s per API key")
    gateway_burst: int = Field(default=400, ge=1, description="requests at once per API key")
    gateway_max_body_bytes: int = Field(default=16_384, ge=1024)
    gateway_max_wait_ms: int = Field(default=10_000, ge=0, description="longest `wait` allowed")
    # What a gateway keeps of next_best_offers (read whole, by every gateway process): the latest
    # decision of this many customers, and this many recent decisions to check interactions
    # against; at start it reads this many of the topic's last records per partition.
    gateway_customers_kept: int = Field(default=200_000, ge=1)
    gateway_decisions_kept: int = Field(default=200_000, ge=1)
    gateway_history: int = Field(default=20_000, ge=0)
    gateway_cors_origins: list[str] = Field(
        default_factory=list, description="origins of other pages that may call the API"
    )

    def new_model(self) -> "OnlineRanker":
        """The unlearned model these settings choose, with the feature set they choose."""
        from features import make_feature_set
        from models.ranker import make_ranker  # River only in the processes that need a model

        return make_ranker(
            self.ranker_model,
            features=make_feature_set(self.feature_set),
            learning_rate=self.learning_rate,
            seed=self.seed,
        )

    def topic_name(self, logical: str) -> str:
        """The real topic name for a logical one (`offers` → `nbo.offers`)."""
        return f"{self.topic_prefix}.{logical}" if self.topic_prefix else logical

    def consumer_group(self, stage: str) -> str:
        """The consumer group of μ-product `stage` (`ranker` → `nbo.ranker`)."""
        return f"{self.topic_prefix}.{stage}" if self.topic_prefix else stage

    def kafka_security(self) -> dict[str, str]:
        """librdkafka security settings, passed through to every client."""
        config: dict[str, str] = {"security.protocol": self.security_protocol}
        if self.sasl_mechanism:
            config["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            config["sasl.username"] = self.sasl_username
        if self.sasl_password:
            config["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_ca_location:
            config["ssl.ca.location"] = self.ssl_ca_location
        return config

    def kafka_config(self, bootstrap: str) -> dict[str, str]:
        """Base librdkafka config for a plain (non-Quix) client on `bootstrap`."""
        return {"bootstrap.servers": bootstrap, **self.kafka_security()}
