"""End offsets are the last offset plus one, also for multi-record batches.

The embedded broker's ListOffsets answers the last batch's base offset plus one; changelog
recovery and the CLI's readers stop at the end offset, so they would stop short.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from app.infra.end_offsets import fetched_end_offsets
from app.infra.kafka_client import read_topic
from app.infra.settings import Settings
from tests.conftest import Cluster, create_topic

pytestmark = pytest.mark.kafka

BATCHES = (5, 3, 1, 7)


async def _produce_batches(bootstrap: str, topic: str) -> list[int]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=200)
    await producer.start()
    offsets: list[int] = []
    try:
        for size in BATCHES:
            # Sent together and flushed once: one batch of `size` records.
            futures = [await producer.send(topic, b"v", partition=0) for _ in range(size)]
            await producer.flush()
            offsets.extend([(await future).offset for future in futures])
    finally:
        await producer.stop()
    return offsets


async def _probe(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=25
    )
    await consumer.start()
    try:
        return await fetched_end_offsets(
            consumer, [TopicPartition(topic, 0), TopicPartition(topic, 1)]
        )
    finally:
        await consumer.stop()


def test_end_offsets_count_every_record_of_multi_record_batches(kafka_cluster: Cluster) -> None:
    settings = Settings(
        bootstrap_servers=kafka_cluster.bootstrap_servers, profile=kafka_cluster.profile
    )
    topic = f"ends-{uuid.uuid4().hex[:10]}"
    asyncio.run(create_topic(kafka_cluster.bootstrap_servers, topic, partitions=2))
    offsets = asyncio.run(_produce_batches(kafka_cluster.bootstrap_servers, topic))
    assert offsets == list(range(sum(BATCHES)))
    ends = asyncio.run(_probe(kafka_cluster.bootstrap_servers, topic))
    assert ends == {TopicPartition(topic, 0): sum(BATCHES), TopicPartition(topic, 1): 0}
    assert len(asyncio.run(read_topic(settings, topic))) == sum(BATCHES)
