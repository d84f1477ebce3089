"""The reducer's batches on a real broker: each instance's snapshot is written to the
changelog partition its key hashes to, fewer times than it had events (coalesced per
batch), and a fresh worker restored from that changelog goes on where the first stopped."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from app.infra import topics
from app.infra.control import new_event, wait_for
from app.infra.kafka_client import read_topic
from app.infra.reducer_agent import partition_of
from app.infra.wire import decode_journal, encode_event
from tests.conftest import TEST_PARTITIONS, Cluster, make_deployment

pytestmark = pytest.mark.kafka

COUNTER = """\
rss: 1
workflow: counter
version: 1
data: {count: 0}
initial: counting
states:
  counting:
    on:
      PING: {assign: {count: "data.count + 1"}}
"""
INSTANCES, PINGS = 24, 25


def test_batched_snapshots_land_on_their_partitions_and_restore(
    kafka_cluster: Cluster, tmp_path: Path
) -> None:
    charts = tmp_path / "rss"
    charts.mkdir()
    (charts / "counter.yaml").write_text(COUNTER, encoding="utf-8")
    deployment = make_deployment(kafka_cluster, tmp_path, (str(charts),))
    settings = deployment.settings
    ids = [f"c{n}" for n in range(INSTANCES)]
    events = [new_event("counter", i, "$start", {}) for i in ids]
    events += [new_event("counter", i, "PING", {}) for _ in range(PINGS) for i in ids]

    async def produce(batch: list) -> None:  # type: ignore[type-arg]
        producer = AIOKafkaProducer(**settings.aiokafka_options(), linger_ms=20)
        await producer.start()
        try:
            for event in batch:
                await producer.send(
                    settings.topic(topics.EVENTS), encode_event(event), key=event.key.encode()
                )
            await producer.flush()
        finally:
            await producer.stop()

    deployment.run(produce(events))  # all waiting before the worker starts: full batches
    try:
        run_and_restore(deployment, ids, events, produce)
    finally:
        for worker in deployment.workers:
            worker.stop()


def run_and_restore(deployment, ids, events, produce) -> None:  # type: ignore[no-untyped-def]
    settings = deployment.settings
    first = deployment.worker("a", OMNINODE_ROLES="reducer")
    first.wait_ready()
    for instance in ids:
        done = deployment.run(
            wait_for(settings, "counter", instance, lambda s: s.seq >= PINGS + 1, 90)
        )
        assert done.data["count"] == PINGS
    changelog = deployment.run(
        read_topic(settings, settings.changelog_topic(topics.SNAPSHOT_TABLE))
    )
    assert {r.key for r in changelog} == {f"counter:{i}".encode() for i in ids}
    for record in changelog:
        assert record.key is not None
        assert record.partition == partition_of(record.key, TEST_PARTITIONS)
    writes = Counter(r.key for r in changelog)
    assert sum(writes.values()) < len(events)  # coalesced: fewer writes than events
    # The journal went in producer batches per partition: on each key's partition, and
    # in order with gapless seqs per instance.
    seqs: dict[bytes, list[int]] = {}
    for record in deployment.run(read_topic(settings, settings.topic(topics.JOURNAL))):
        assert record.key is not None
        assert record.partition == partition_of(record.key, TEST_PARTITIONS)
        seqs.setdefault(record.key, []).append(decode_journal(record.value).seq)
    assert seqs == {f"counter:{i}".encode(): list(range(1, PINGS + 2)) for i in ids}
    first.stop()

    second = deployment.worker("b", OMNINODE_ROLES="reducer")  # empty data dir: restores
    second.wait_ready()
    deployment.run(produce([new_event("counter", i, "PING", {}) for i in ids]))
    for instance in ids:
        again = deployment.run(
            wait_for(settings, "counter", instance, lambda s: s.seq >= PINGS + 2, 90)
        )
        assert again.data["count"] == PINGS + 1
