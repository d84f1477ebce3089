"""A producer whose partitioner is not Kafka's default (murmur2) puts records where their
key does not hash. On a real broker: such a ``$start`` is dead-lettered with the reason,
no instance is created, and the same event on the right partition starts it."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer

from app.infra import topics
from app.infra.control import new_event, read_snapshot, wait_for
from app.infra.kafka_client import read_topic
from app.infra.reducer_agent import partition_of
from app.infra.wire import decode_dead_letter, encode_event
from tests.conftest import TEST_PARTITIONS, Deployment

pytestmark = pytest.mark.kafka


def test_a_start_on_the_wrong_partition_is_dead_lettered_and_creates_nothing(
    deployment: Deployment,
) -> None:
    deployment.worker("w").wait_ready()
    settings = deployment.settings
    start = new_event(
        "loan_application", "p-1", "$start", {"applicant": "p", "amount": 1200, "customer_years": 3}
    )
    key = start.key.encode()
    right = partition_of(key, TEST_PARTITIONS)
    wrong = (right + 1) % TEST_PARTITIONS
    topic = settings.topic(topics.EVENTS)

    async def produce(partition: int) -> None:
        producer = AIOKafkaProducer(**settings.aiokafka_options(), acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(topic, encode_event(start), key=key, partition=partition)
        finally:
            await producer.stop()

    async def dead_letters() -> list[dict]:  # type: ignore[type-arg]
        for _ in range(100):
            records = await read_topic(settings, settings.topic(topics.DEAD_LETTERS))
            if records:
                return [decode_dead_letter(r.value) for r in records]
            await asyncio.sleep(0.3)
        return []

    deployment.run(produce(wrong))
    (letter,) = deployment.run(dead_letters())
    assert letter["stage"] == "route" and letter["source_partition"] == wrong
    assert f"but its key hashes to partition {right} of {TEST_PARTITIONS}" in letter["reason"]
    assert "murmur2" in letter["reason"]
    assert deployment.run(read_snapshot(settings, "loan_application", "p-1")) is None

    deployment.run(produce(right))
    started = deployment.run(
        wait_for(settings, "loan_application", "p-1", lambda s: s.seq >= 1, 60)
    )
    assert started.status in ("active", "done")
