"""The producer flush before an offset commit is a delivery barrier (app/infra/faust_transport.py).

Faust's own flush returned with one buffered table write still undelivered, every time it
was measured; a commit in that window followed by a crash lost a snapshot whose source
offset was committed. These tests hold the barrier on the session's broker.
"""

from __future__ import annotations

import asyncio
import uuid

import faust
import pytest

from app.infra.faust_transport import DeliveryBarrierBuffer
from app.infra.kafka_client import read_topic
from app.infra.settings import Settings
from tests.conftest import Cluster

pytestmark = pytest.mark.kafka


def _scheme(cluster: Cluster) -> str:
    return "omninode-local" if cluster.profile == "local" else "omninode"


async def _send_soon_then_flush(
    cluster: Cluster, topic_name: str, count: int
) -> list[faust.types.FutureMessage]:
    app = faust.App(
        f"barrier-{uuid.uuid4().hex[:8]}",
        broker=f"{_scheme(cluster)}://{cluster.bootstrap_servers}",
        producer_max_batch_size=1,  # one record per request: the slowest drain, the widest window
        topic_partitions=1,
    )
    topic = app.topic(topic_name, partitions=1, key_serializer="raw", value_serializer="raw")
    await app.producer.start()
    try:
        assert isinstance(app.producer.buffer, DeliveryBarrierBuffer)
        await topic.maybe_declare()
        futures = [topic.as_future_message(key=b"k", value=str(i).encode()) for i in range(count)]
        for future in futures:
            app.producer.send_soon(future)  # how a table write reaches its changelog
        await app.producer.flush()
        # Checked before any other await: nothing may still be on its way.
        undelivered = [future for future in futures if not future.done()]
        assert undelivered == [], f"{len(undelivered)} of {count} records undelivered after flush"
        return futures
    finally:
        await app.producer.stop()


@pytest.mark.parametrize("count", [1, 50, 500])
def test_flush_returns_only_after_every_buffered_record_is_delivered(
    kafka_cluster: Cluster, count: int
) -> None:
    topic_name = f"barrier-{uuid.uuid4().hex[:10]}"
    futures = asyncio.run(_send_soon_then_flush(kafka_cluster, topic_name, count))
    assert all(future.exception() is None for future in futures)
    settings = Settings(
        bootstrap_servers=kafka_cluster.bootstrap_servers, profile=kafka_cluster.profile
    )
    records = asyncio.run(read_topic(settings, topic_name))
    assert [record.value for record in records] == [str(i).encode() for i in range(count)]
