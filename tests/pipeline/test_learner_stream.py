"""The learner μ-product on a broker: it learns every feedback record once, whether it is
stopped, killed or replaced by its standby, and publishes the model on `models`."""

from __future__ import annotations

import json

from models.snapshot import decode_model
from pipeline.contracts.schemas import ModelSnapshot
from pipeline.contracts.topics import create_topics
from pipeline.learner.topics import latest_snapshots
from pipeline.settings import Settings
from tests.factories import eventually
from tests.pipeline.test_learner import told
from tests.streams import running, send

CUSTOMERS = [f"L{i:02d}" for i in range(20)]  # keys spread over every partition
BOUND = 60.0


def tell(settings: Settings, decisions: range) -> None:
    """Feedback as rankers tell it: decision n about customer n mod 20, in order, decided with
    the feature set the stream's learner reads."""
    feature_set = settings.new_model().features.label
    send(
        settings,
        "feedback",
        [
            (
                c,
                json.loads(
                    told(n, feature_set=feature_set)
                    .model_copy(update={"customer_id": c})
                    .model_dump_json()
                ),
            )
            for n in decisions
            for c in [CUSTOMERS[n % len(CUSTOMERS)]]
        ],
    )


def champion_after(settings: Settings, labels: int, what: str) -> ModelSnapshot:
    """The published champion once it has learned `labels` labels (waits, bounded)."""

    def published() -> ModelSnapshot | None:
        latest = latest_snapshots(settings, settings.broker_address or "").get("champion")
        return latest if latest is not None and latest.labels_learned >= labels else None

    return eventually(published, within=BOUND, what=what)


def test_every_label_is_learned_once_across_a_stop_a_kill_and_a_standby(make_settings) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(
        topic_partitions=4,
        model_publish_interval=0.3,
        mlflow_tracking=False,
    )
    create_topics(settings, settings.broker_address or "")
    tell(settings, range(0, 100))
    with running(settings, "run", "learner"):
        first = champion_after(settings, 100, "the first 100 labels published")
    assert first.labels_learned == 100 and first.model_version == "bayesian_logistic-100"
    assert sum(offset + 1 for offset in first.learned_offsets.values()) == 100

    tell(settings, range(100, 200))  # while no learner runs
    with running(settings, "run", "learner") as killed:
        champion_after(settings, 101, "a snapshot past the stop")
        tell(settings, range(200, 300))
        killed.kill()  # SIGKILL, with labels learned since its last snapshot
    with running(settings, "run", "learner") as active, running(settings, "run", "learner"):
        champion_after(settings, 300, "every label after the kill")
        tell(settings, range(300, 400))
        champion_after(settings, 350, "labels learned while the standby waits")
        active.kill()  # the standby takes the lease and goes on
        tell(settings, range(400, 500))
        last = champion_after(settings, 500, "every label, by the standby")
    assert last.labels_learned == 500  # none lost, none learned twice
    assert decode_model(last.model).n_learned == 500
    assert sum(offset + 1 for offset in last.learned_offsets.values()) == 500
    assert last.published_at > first.published_at
