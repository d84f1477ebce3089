"""The reducer's per-partition producer batches (app.infra.send_batches), against a
producer double that keeps what it is handed; the broker tests (test_batch_kafka,
test_kafka_runtime) run them against the real producer."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch
from faust.types import TP

from app.infra.batch_table import BatchTable, handling
from app.infra.kafka_client import partition_for
from app.infra.send_batches import BATCHED_RECORD_BYTES, SendBatches, SendFailed, sending_in
from tests.test_batch_loop import RecordingTable, event

BATCH_BYTES = 1_000


class Cluster:
    def __init__(self, partitions: dict[str, int]) -> None:
        self.partitions = partitions

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        count = self.partitions.get(topic)
        return set(range(count)) if count else None


class Producer:
    """aiokafka's batch interface; ``send_batch`` answers with a future the test settles."""

    def __init__(self, partitions: dict[str, int], refuse: Exception | None = None) -> None:
        self.client = type("Client", (), {"cluster": Cluster(partitions)})()
        self.sent: list[tuple[str, int, list[tuple[bytes, bytes]], bool]] = []
        self.answers: list[asyncio.Future[Any]] = []
        self.refuse = refuse

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(BATCH_BYTES, 0)  # 0: no compression

    async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int) -> Any:
        if self.refuse is not None:
            raise self.refuse
        closed = batch.closed()
        records = [(r.key, r.value) for r in DefaultRecordBatch(bytearray(batch._build()))]
        self.sent.append((topic, partition, records, closed))
        answer = asyncio.get_running_loop().create_future()
        self.answers.append(answer)
        return answer


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_records_go_per_key_partition_in_order_and_are_handed_over_closed_on_submit() -> None:
    async def scenario() -> None:
        producer = Producer({"journal": 4, "effects": 2})
        batches = SendBatches(producer)  # type: ignore[arg-type]
        keys = [f"w:i{n}".encode() for n in range(12)]
        for n, key in enumerate(keys):
            assert batches.append("journal", key, b"j%d" % n) is not None
            assert batches.append("effects", key, b"e%d" % n) is not None
        assert producer.sent == []  # nothing before submit
        await batches.submit()
        for topic, partition, records, closed in producer.sent:
            assert closed  # a complete batch: sent at once, without the producer's linger
            for key, _ in records:
                assert partition == partition_for(key, 4 if topic == "journal" else 2)
        journal = [r for t, _, rs, _ in producer.sent if t == "journal" for r in rs]
        for partition in range(4):
            mine = [v for k, v in journal if partition_for(k, 4) == partition]
            assert mine == sorted(mine, key=lambda v: int(v[1:]))  # in the order appended
        assert len(journal) == 12
        handed_over = len(producer.sent)
        await batches.submit()
        assert len(producer.sent) == handed_over  # each batch is handed over once

    run(scenario())


def test_a_record_future_is_its_batch_delivery_and_takes_its_failure() -> None:
    async def scenario() -> None:
        producer = Producer({"journal": 1})
        batches = SendBatches(producer)  # type: ignore[arg-type]
        first = batches.append("journal", b"a", b"1")
        second = batches.append("journal", b"b", b"2")
        assert first is second and first is not None
        await batches.submit()
        assert not first.done()  # handed over, not yet acknowledged
        producer.answers[0].set_result("metadata")
        await asyncio.sleep(0)
        assert first.result() == "metadata"
        third = batches.append("journal", b"a", b"3")
        assert third is not None and third is not first
        await batches.submit()
        producer.answers[1].set_exception(KafkaTimeoutError())
        await asyncio.sleep(0)
        assert isinstance(third.exception(), KafkaTimeoutError)

    run(scenario())


def test_a_full_batch_is_followed_by_another_for_the_same_partition() -> None:
    async def scenario() -> None:
        producer = Producer({"journal": 1})
        batches = SendBatches(producer)  # type: ignore[arg-type]
        values = [bytes([65 + n]) * 300 for n in range(7)]
        futures = [batches.append("journal", b"k", v) for v in values]
        assert all(f is not None for f in futures) and len(set(map(id, futures))) > 1
        await batches.submit()
        assert [v for _, _, records, _ in producer.sent for _, v in records] == values

    run(scenario())


def test_what_cannot_join_a_batch_is_left_to_the_caller() -> None:
    async def scenario() -> None:
        producer = Producer({"journal": 2})
        batches = SendBatches(producer)  # type: ignore[arg-type]
        assert batches.append("journal", None, b"no key") is None
        assert batches.append("unknown-topic", b"k", b"v") is None
        assert batches.append("journal", b"k", b"x" * BATCHED_RECORD_BYTES) is None
        assert batches.append("journal", b"k", b"x" * (BATCH_BYTES * 2)) is not None  # alone
        assert batches.append("journal", b"k", b"fits") is not None  # in the next batch
        await batches.submit()
        sent = [[v[:4] for _, v in records] for _, _, records, _ in producer.sent]
        assert sent == [[b"xxxx"], [b"fits"]]

    run(scenario())


def test_a_refused_batch_fails_its_records_and_every_later_submit() -> None:
    async def scenario() -> None:
        producer = Producer({"journal": 1}, refuse=KafkaTimeoutError())
        batches = SendBatches(producer)  # type: ignore[arg-type]
        lost = batches.append("journal", b"k", b"v")
        with pytest.raises(SendFailed, match="cannot send to journal"):
            await batches.submit()
        assert lost is not None and isinstance(lost.exception(), SendFailed)
        producer.refuse = None
        later = batches.append("journal", b"k", b"w")
        with pytest.raises(SendFailed):  # records of this process were lost: never ack again
            await batches.submit()
        assert later is not None and isinstance(later.exception(), SendFailed)
        assert producer.sent == []

    run(scenario())


class Store(RecordingTable):
    """A Faust table's store: writes with the current event's partition, kept offsets."""

    def __init__(self) -> None:
        super().__init__()
        self.persisted: dict[TP, int] = {}

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        self.persisted[tp] = offset

    def _set(self, key: bytes, value: bytes) -> None:  # Faust's Store, below serializing
        self[key] = value

    def _del(self, key: bytes) -> None:
        del self[key]


class FaustTable(RecordingTable):
    """What BatchTable uses of a Faust table: its store, its changelog topic, and its own
    writes (a send per record), which the batch's sends replace."""

    def __init__(self) -> None:
        super().__init__()
        self.data = Store()
        self.changelog_topic = SimpleNamespace(get_topic_name=lambda: "app-snapshots-changelog")
        self.key_serializer = self.value_serializer = "raw"


def test_a_faust_table_s_batch_writes_its_store_and_sends_its_changelog_with_the_batch() -> None:
    async def scenario() -> None:
        producer = Producer({"app-snapshots-changelog": 8})
        batches = SendBatches(producer)  # type: ignore[arg-type]
        faust_table = FaustTable()
        faust_table.data[b"old"] = b"0"
        table = BatchTable(faust_table)
        with handling(event(3, 1, b"a")):  # type: ignore[arg-type]
            table[b"a"] = b"1"
            table[b"big"] = b"x" * BATCHED_RECORD_BYTES
        with handling(event(5, 2, b"old")):  # type: ignore[arg-type]
            del table[b"old"]
        with sending_in(batches):
            table.flush()
        assert faust_table.data.writes == [
            (b"old", b"0", None),
            (b"a", b"1", 3),
            (b"old", None, 5),
        ]
        # too large for a batch: written and sent by the Faust table itself
        assert faust_table.writes == [(b"big", b"x" * BATCHED_RECORD_BYTES, 3)]
        await batches.submit()
        sent = [(t, p, records) for t, p, records, _ in producer.sent]
        assert sent == [
            ("app-snapshots-changelog", 3, [(b"a", b"1")]),
            ("app-snapshots-changelog", 5, [(b"old", None)]),  # a tombstone
        ]
        assert faust_table.data.persisted == {}  # not acknowledged yet
        producer.answers[0].set_result(SimpleNamespace(offset=40))
        producer.answers[1].set_result(SimpleNamespace(offset=7))
        await asyncio.sleep(0)
        assert faust_table.data.persisted == {
            TP("app-snapshots-changelog", 3): 40,
            TP("app-snapshots-changelog", 5): 7,
        }

    run(scenario())


def test_without_batched_sends_a_batch_writes_through_the_faust_table() -> None:
    faust_table = FaustTable()
    table = BatchTable(faust_table)
    with handling(event(2, 1, b"a")):  # type: ignore[arg-type]
        table[b"a"] = b"1"
    table.flush()
    assert faust_table.writes == [(b"a", b"1", 2)] and faust_table.data.writes == []
