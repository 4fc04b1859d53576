"""The gateway's sink: records on Kafka before the request is answered.

`send` completes when the broker has acknowledged the record from every in-sync replica
(`acks=all`; idempotent, so a retried send is not written twice). A 2xx therefore means the
record is on Kafka: a gateway killed after answering loses nothing it answered for. A thread
polls the producer for its delivery reports and completes each request's future on the loop.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from pipeline.errors import BrokerError
from pipeline.kafka.clients import producer_config
from pipeline.settings import Settings


class NotAcknowledged(BrokerError):
    """The broker did not take a record (a full local queue, or a failed delivery)."""


class AcknowledgedProducer:
    def __init__(self, settings: Settings, bootstrap: str) -> None:
        self._settings = settings
        self._producer = Producer(
            {
                **producer_config(settings, bootstrap),
                "acks": "all",
                "enable.idempotence": True,
                "delivery.timeout.ms": 30_000,
            }
        )
        self._stopping = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="gateway-acks", daemon=True)
        self._poller.start()

    async def send(self, logical_topic: str, key: str, value: bytes) -> None:
        """Produce `value` keyed by `key` (the customer id: the same partition as every other
        record of this customer) and wait for the broker's acknowledgement."""
        loop = asyncio.get_running_loop()
        acknowledged: asyncio.Future[None] = loop.create_future()

        def report(error: KafkaError | None, _message: Message) -> None:
            loop.call_soon_threadsafe(_settle, acknowledged, error)

        try:
            self._producer.produce(
                self._settings.topic_name(logical_topic), value, key.encode(), on_delivery=report
            )
        except (BufferError, KafkaException) as error:
            raise NotAcknowledged(f"{logical_topic}: not queued ({error})") from error
        await acknowledged

    def reachable(self, timeout: float = 2.0) -> bool:
        """Whether the broker answers a metadata request (blocking: call it off the loop)."""
        try:
            self._producer.list_topics(timeout=timeout)
        except KafkaException:
            return False
        return True

    def close(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._poller.join(timeout)
        self._producer.flush(timeout)

    def _poll(self) -> None:
        while not self._stopping.is_set():
            self._producer.poll(0.05)


def _settle(acknowledged: asyncio.Future[Any], error: KafkaError | None) -> None:
    if acknowledged.done():  # the request was cancelled (its client went away)
        return
    if error is None:
        acknowledged.set_result(None)
    else:
        acknowledged.set_exception(NotAcknowledged(f"delivery failed: {error}"))
