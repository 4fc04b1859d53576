"""How long a SIGKILLed producer's open transaction blocks `read_committed` readers on Kafka.

    python -m benchmarks.dead_transaction          # part of `make chaos` on Kafka

A producer opens a transaction, writes one record and is SIGKILLed; another producer then
writes to the same partition, and a `read_committed` reader waits for that record. Three
trials: the transaction timeout librdkafka defaults to (60 s) and nbo's
(`NBO_TRANSACTION_TIMEOUT_MS`), each with no restart (the broker aborts the transaction once it
times out, at its next cleanup, every 10 s by default), and nbo's with a restart under the same
transactional id (the new producer aborts it at once: what a stable instance id buys).
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from benchmarks.brokers import kafka
from pipeline.settings import Settings

TRIALS = ((60_000, False), (Settings().transaction_timeout_ms, False),
          (Settings().transaction_timeout_ms, True))  # fmt: skip


def open_and_wait(bootstrap: str, topic: str, transactional_id: str, timeout_ms: int) -> None:
    """The producer that dies: a transaction left open, then waits to be killed."""
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id,
                         "transaction.timeout.ms": timeout_ms})  # fmt: skip
    producer.init_transactions()
    producer.begin_transaction()
    producer.produce(topic, b"open", b"k", partition=0)
    producer.flush()
    print("open", flush=True)
    time.sleep(600)


def blocked_seconds(bootstrap: str, timeout_ms: int, restart: bool) -> float:
    """Seconds from the SIGKILL until a `read_committed` reader gets a later record."""
    topic = f"nbo-dead-transaction-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result()
    while topic not in admin.list_topics(timeout=5).topics:  # bounded by each call's timeout
        time.sleep(0.1)
    transactional_id = f"{topic}-producer"
    command = ["-m", "benchmarks.dead_transaction", "--open", bootstrap, topic, transactional_id]
    dying = subprocess.Popen(
        [sys.executable, *command, str(timeout_ms)], stdout=subprocess.PIPE, text=True
    )
    assert dying.stdout is not None and dying.stdout.readline().strip() == "open"
    dying.kill()
    dying.wait()
    killed = time.monotonic()
    if restart:
        restarted = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id,
                              "transaction.timeout.ms": timeout_ms})  # fmt: skip
        restarted.init_transactions()  # fences the dead one and aborts its transaction
    other = Producer({"bootstrap.servers": bootstrap})
    other.produce(topic, b"after", b"k", partition=0)
    other.flush()
    reader = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "nbo-dead-transaction",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    reader.assign([TopicPartition(topic, 0, 0)])
    try:
        deadline = killed + 3 * timeout_ms / 1000 + 30
        while time.monotonic() < deadline:
            message = reader.poll(0.05)
            if message is not None and message.error() is None and message.value() == b"after":
                return round(time.monotonic() - killed, 1)
        raise TimeoutError(f"{topic}: the record after the dead transaction never came")
    finally:
        reader.close()


def measure(bootstrap: str) -> list[dict[str, object]]:
    return [
        {"transaction timeout ms": timeout_ms, "restarted with the same id": restart,
         "readers blocked s": blocked_seconds(bootstrap, timeout_ms, restart)}
        for timeout_ms, restart in TRIALS
    ]  # fmt: skip


def main() -> None:
    if sys.argv[1:2] == ["--open"]:
        open_and_wait(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        return
    with kafka() as (address, _):
        for row in measure(address):
            print(row)


if __name__ == "__main__":
    main()
