"""What only a real Kafka does: state backed up to changelog topics moves with its partitions.

An instance that stops (SIGTERM) or dies (SIGKILL) leaves its partitions to another instance
with its own, empty, local state directory, as on another machine: the other restores the
customers' state from the changelogs and goes on as if nothing had happened.
"""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest

from pipeline.kafka.clients import consume
from pipeline.settings import Settings
from tests.factories import START, customer, event, interaction, with_offers
from tests.streams import outputs, running, send

pytestmark = pytest.mark.real_kafka

PEOPLE = [f"K{i:03d}" for i in range(24)]  # keys over all four partitions


def _on_two_machines(settings: Settings) -> tuple[Settings, Settings]:
    return (
        settings.model_copy(
            update={"state_dir": settings.state_dir / "machine-a", "instance_id": "machine-a"}
        ),
        settings.model_copy(
            update={"state_dir": settings.state_dir / "machine-b", "instance_id": "machine-b"}
        ),
    )


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["stopped", "killed"])
def test_a_customers_contact_history_survives_its_partition_moving(
    make_settings: Callable[..., Settings], how: signal.Signals
) -> None:
    settings = with_offers(make_settings(topic_partitions=4, mlflow_tracking=False))
    first, second = _on_two_machines(settings)
    send(settings, "customers", [(c, customer(c, "mass")) for c in PEOPLE])
    with running(first, "run", "valid-offers") as process:
        send(settings, "events", [(c, event(f"a-{c}", c, START)) for c in PEOPLE])
        outputs(settings, "valid_offers", len(PEOPLE))
        shown = START + timedelta(minutes=1)
        impressions = [interaction(f"d-a-{c}", c, "offer-a", "impression", shown) for c in PEOPLE]
        send(settings, "interactions", impressions)
        send(settings, "events", [(c, event(f"b-{c}", c, START + timedelta(minutes=2)))
                                  for c in PEOPLE])  # fmt: skip
        before = outputs(settings, "valid_offers", 2 * len(PEOPLE))
        process.send_signal(how)
        process.wait(timeout=60)
    assert all(_impressions(v, "offer-a") == 1 for v in before if v["event_id"].startswith("b-"))

    with running(second, "run", "valid-offers"):  # empty local state: it restores it
        send(settings, "events", [(c, event(f"c-{c}", c, START + timedelta(minutes=3)))
                                  for c in PEOPLE])  # fmt: skip
        after = [
            v
            for v in outputs(settings, "valid_offers", 3 * len(PEOPLE), timeout=120)
            if v["event_id"].startswith("c-")
        ]
    assert len(after) == len(PEOPLE)
    assert all(_impressions(v, "offer-a") == 1 for v in after)  # the impression was kept
    assert all(_impressions(v, "offer-b") == 0 for v in after)


def _impressions(valid: dict, offer_id: str) -> int:  # type: ignore[type-arg]
    return next(c["impressions"] for c in valid["candidates"] if c["offer_id"] == offer_id)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["stopped", "killed"])
def test_a_label_for_a_decision_of_a_stopped_ranker_is_learned_by_the_next(
    make_settings: Callable[..., Settings], how: signal.Signals
) -> None:
    settings = with_offers(
        make_settings(
            topic_partitions=4,
            mlflow_tracking=False,
            exploration="greedy",
            model_publish_interval=0.5,
        )
    )
    first, second = _on_two_machines(settings)
    send(settings, "customers", [(c, customer(c, "affluent")) for c in PEOPLE])
    with running(settings, "run", "valid-offers"):
        with running(first, "run", "ranker") as ranker:
            send(settings, "events", [(c, event(f"a-{c}", c, START)) for c in PEOPLE])
            decided = outputs(settings, "next_best_offers", len(PEOPLE), timeout=120)
            ranker.send_signal(how)
            ranker.wait(timeout=60)
        at = START + timedelta(minutes=5)
        answers = [
            record
            for d in decided
            for record in (
                interaction(d["decision_id"], d["customer_id"], "offer-a", "impression", at),
                interaction(d["decision_id"], d["customer_id"], "offer-a", "accept", at),
            )
        ]
        # another machine takes the partitions with their state; the learner learns its labels
        with running(second, "run", "ranker"), running(settings, "run", "learner"):
            send(settings, "interactions", answers)
            late = START + timedelta(hours=1)
            for probe in range(40):  # bounded: until the labels were learned
                send(settings, "events", [("K000", event(f"p{probe}", "K000", late))])
                probed = [
                    d
                    for d in outputs(settings, "next_best_offers", len(PEOPLE) + probe + 1)
                    if d["event_id"] == f"p{probe}"
                ]
                if probed and probed[0]["model_version"] == f"bayesian_logistic-{len(PEOPLE)}":
                    break
            else:
                pytest.fail(f"the labels were not all learned: {probed}")
    dead = consume(settings, settings.broker_address or "", settings.topic_name("dead_letter"))
    assert [letter.json()["reason"] for letter in dead] == []  # no label was lost


@pytest.mark.parametrize("guarantee", ["exactly-once", "at-least-once"])
@pytest.mark.parametrize("victim", ["valid-offers", "ranker"])
def test_a_stage_killed_mid_stream_loses_no_decision_and_duplicates_none_with_exactly_once(
    make_settings: Callable[..., Settings], victim: str, guarantee: str
) -> None:
    settings = with_offers(
        make_settings(
            topic_partitions=4,
            mlflow_tracking=False,
            exploration="greedy",
            processing_guarantee=guarantee,
            commit_interval=0.5,
        )
    )
    send(settings, "customers", [(c, customer(c, "mass")) for c in PEOPLE])
    events = [
        (c, event(f"r{r}-{c}", c, START + timedelta(minutes=r))) for r in range(12) for c in PEOPLE
    ]
    half = len(events) // 2
    with (
        running(settings, "run", "valid-offers") as valid,
        running(settings, "run", "ranker") as ranker,
    ):
        send(settings, "events", events[:half])
        outputs(settings, "next_best_offers", len(PEOPLE), timeout=120)  # mid-stream
        killed = {"valid-offers": valid, "ranker": ranker}[victim]
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=60)
        send(settings, "events", events[half:])
        with running(settings, "run", victim):  # restarted: from the last committed offsets
            outputs(settings, "next_best_offers", len(events), timeout=180)
    topic = settings.topic_name("next_best_offers")  # read committed, once all have stopped
    ids = Counter(
        r.json()["decision_id"] for r in consume(settings, settings.broker_address or "", topic)
    )
    assert set(ids) == {f"d-{e['event_id']}" for _, e in events}  # none lost, none made up
    if guarantee == "exactly-once":
        assert set(ids.values()) == {1}
    # at-least-once: a replayed decision may appear twice, with the same id (README)


def test_a_learner_whose_session_timeout_kafka_refuses_says_so_and_exits(
    make_settings: Callable[..., Settings],
) -> None:
    """Not a standby that waits for ever: Kafka refuses sessions under 6 s by default."""
    settings = with_offers(make_settings(session_timeout_ms=2000, mlflow_tracking=False))
    with running(settings, "run", "learner") as learner:
        code = learner.wait(timeout=60)
    log = (settings.state_dir.parent / "run-learner.log").read_text()
    assert code == 1 and "the broker refuses NBO_SESSION_TIMEOUT_MS=2000" in log
