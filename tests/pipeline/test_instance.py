"""Instances: a stable identity per μ-product process, which a restart takes again, which two
live processes cannot share, and which the Kafka clients are given."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import pytest

from pipeline.errors import InstanceFenced, InstanceTaken
from pipeline.kafka import processes
from pipeline.kafka.broker import EMBEDDED_CLUSTER_PREFIX
from pipeline.kafka.instance import MAX_SLOTS, claim, instance_of
from pipeline.kafka.quix import make_application
from pipeline.settings import Settings
from tests.factories import START, customer, event, eventually, with_offers
from tests.streams import outputs, running, send

KAFKA_CLUSTER = "MkU3OEVBNTcwNTJENDM2Qg"
EMBEDDED_CLUSTER = f"{EMBEDDED_CLUSTER_PREFIX}1234"

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from pipeline.kafka.instance import claim
    with claim(Path(sys.argv[1]), "ranker", sys.argv[2] or None, host="h") as instance:
        print(instance.id, flush=True)
        time.sleep(600)
    """
)


def hold(stage_dir: Path, instance_id: str = "") -> tuple[subprocess.Popen[str], str]:
    """Another process that claims an instance and holds it; its id once it has one."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(stage_dir), instance_id],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def test_each_live_process_takes_the_lowest_free_slot(tmp_path: Path) -> None:
    first, first_id = hold(tmp_path)
    try:
        with claim(tmp_path, "ranker", host="h") as second:
            assert (first_id, second.id) == ("h-0", "h-1")
            assert second.state_dir == tmp_path / "h-1"
    finally:
        first.kill()
        first.wait()


def test_a_killed_process_s_slot_is_taken_again_by_its_restart(tmp_path: Path) -> None:
    holder, held = hold(tmp_path)
    other, other_id = hold(tmp_path)
    try:
        holder.send_signal(signal.SIGKILL)  # no clean-up runs: the kernel drops the lock
        holder.wait()
        with claim(tmp_path, "ranker", host="h") as restarted:
            assert (held, other_id, restarted.id) == ("h-0", "h-1", "h-0")
    finally:
        other.kill()
        other.wait()


def test_a_second_live_process_with_the_same_id_is_refused_with_its_holder_named(
    tmp_path: Path,
) -> None:
    holder, _ = hold(tmp_path, "nbo-ranker-0")
    try:
        with pytest.raises(InstanceTaken) as refused, claim(tmp_path, "ranker", "nbo-ranker-0"):
            pass
        assert "instance 'nbo-ranker-0' is already running" in str(refused.value)
        assert f"pid {holder.pid}" in str(refused.value)
    finally:
        holder.kill()
        holder.wait()
    with claim(tmp_path, "ranker", "nbo-ranker-0") as instance:  # free once its holder died
        assert instance.id == "nbo-ranker-0"


def test_an_id_is_made_safe_for_file_names_and_kafka(tmp_path: Path) -> None:
    with claim(tmp_path, "ranker", "pod/ranker 0") as instance:
        assert instance.id == "pod-ranker-0"


def test_every_slot_taken_is_a_clear_error(tmp_path: Path) -> None:
    with ExitStack() as held:
        for _ in range(MAX_SLOTS):
            held.enter_context(claim(tmp_path, "ranker", host="h"))
        with (
            pytest.raises(InstanceTaken, match=f"all {MAX_SLOTS} instance slots"),
            claim(tmp_path, "ranker", host="h"),
        ):
            pass


def test_on_kafka_the_id_is_the_transactional_id_and_the_static_membership(
    tmp_path: Path,
) -> None:
    settings = Settings(
        state_dir=tmp_path, processing_guarantee="exactly-once", instance_id="nbo-ranker-0"
    )
    with instance_of(settings, "ranker", KAFKA_CLUSTER) as instance:
        app = make_application(settings, "127.0.0.1:9", instance, KAFKA_CLUSTER)
    config = app.config
    assert config.producer_extra_config["transactional.id"] == "nbo.ranker-nbo-ranker-0"
    assert config.producer_extra_config["transaction.timeout.ms"] == 10_000
    assert config.consumer_extra_config["group.instance.id"] == "nbo-ranker-0"
    assert config.consumer_extra_config["session.timeout.ms"] == 15_000
    assert instance.state_dir == tmp_path / KAFKA_CLUSTER / "ranker" / "nbo-ranker-0"


def test_on_the_embedded_broker_instances_share_their_state_and_are_not_static(
    tmp_path: Path,
) -> None:
    settings = Settings(state_dir=tmp_path)
    with (
        instance_of(settings, "ranker", EMBEDDED_CLUSTER) as first,
        instance_of(settings, "ranker", EMBEDDED_CLUSTER) as second,
    ):
        app = make_application(settings, "127.0.0.1:9", first, EMBEDDED_CLUSTER)
    assert first.id != second.id
    assert first.state_dir == second.state_dir == tmp_path / EMBEDDED_CLUSTER / "ranker" / "shared"
    assert "group.instance.id" not in app.config.consumer_extra_config
    assert "transactional.id" not in app.config.producer_extra_config  # at-least-once


def test_a_second_ranker_with_a_live_one_s_id_exits_with_a_clear_error(
    make_settings: Callable[..., Settings],
) -> None:
    """Refused, with its own exit code (a supervisor can be told not to restart on it), and
    the live one goes on: the two do not fence each other."""
    settings = with_offers(make_settings(instance_id="nbo-ranker-0", mlflow_tracking=False))
    with running(settings, "run", "ranker") as first:

        def first_holds_its_instance() -> bool:
            return any(settings.state_dir.glob("*/ranker/nbo-ranker-0.lock"))

        eventually(first_holds_its_instance, within=60, what="the first ranker's instance lock")
        second = subprocess.run(
            [sys.executable, "-m", "pipeline", "run", "ranker"],
            env=processes.environment(settings),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert first.poll() is None
    assert second.returncode == InstanceTaken.exit_code == 3
    assert "instance 'nbo-ranker-0' is already running on this host" in second.stderr


@pytest.mark.real_kafka
def test_on_kafka_a_process_fenced_by_another_with_its_id_exits_with_a_clear_error(
    make_settings: Callable[..., Settings],
) -> None:
    """Two hosts given one NBO_INSTANCE_ID (no lock in common): Kafka fences the older
    process, which says why and exits with the code a supervisor can be told not to restart."""
    settings = with_offers(make_settings(instance_id="nbo-ranker-0", mlflow_tracking=False))
    first, second = (
        settings.model_copy(update={"state_dir": settings.state_dir / host})
        for host in ("host-a", "host-b")
    )
    send(settings, "customers", [("F1", customer("F1", "mass"))])
    with running(settings, "run", "valid-offers"), running(first, "run", "ranker") as older:
        send(settings, "events", [("F1", event("f1", "F1", START))])
        outputs(settings, "next_best_offers", 1, timeout=120)  # the older one has joined
        with running(second, "run", "ranker"):
            code = older.wait(timeout=120)
    log = (first.state_dir.parent / "run-ranker.log").read_text()
    assert code == InstanceFenced.exit_code == 3, log
    assert "another process joined as instance 'nbo-ranker-0'" in log
