"""The reducer's batches: write-behind tables (reads see the batch's writes, each key is
written once, on the partition of the record that last wrote it) and the loop's order:
every record handled, then the tables written, then the batch acked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from faust.streams import current_event

from app.infra import agent_loop
from app.infra.batch_table import BatchTable, handling
from app.infra.outbox import Source
from tests.helpers import ListOutbox


@dataclass
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Any = None


@dataclass
class FakeEvent:
    message: Message
    acked: bool = False


class RecordingTable(dict[bytes, bytes]):
    """A dict that notes the partition of Faust's current event at each write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[bytes, bytes | None, int | None]] = []

    def __setitem__(self, key: bytes, value: bytes) -> None:
        event = current_event()
        self.writes.append((key, value, event.message.partition if event else None))
        super().__setitem__(key, value)

    def __delitem__(self, key: bytes) -> None:
        event = current_event()
        self.writes.append((key, None, event.message.partition if event else None))
        super().__delitem__(key)


def event(partition: int, offset: int, key: bytes = b"k") -> FakeEvent:
    return FakeEvent(Message("omninode.events", partition, offset, key, b"v"))


def test_reads_see_the_batch_and_each_key_is_written_once_on_its_partition() -> None:
    table = RecordingTable()
    table[b"old"] = b"0"
    table.writes.clear()
    batch = BatchTable(table)
    with handling(event(3, 1, b"a")):  # type: ignore[arg-type]
        batch[b"a"] = b"1"
        assert batch[b"a"] == b"1" and table.get(b"a") is None  # not written yet
    with handling(event(5, 2, b"b")):  # type: ignore[arg-type]
        batch[b"b"] = b"1"
        del batch[b"old"]
    with handling(event(3, 3, b"a")):  # type: ignore[arg-type]
        batch[b"a"] = b"2"
    assert b"old" not in batch and batch.get(b"old") is None
    assert dict(batch.items()) == {b"a": b"2", b"b": b"1"}
    batch.flush()
    assert table.writes == [(b"a", b"2", 3), (b"b", b"1", 5), (b"old", None, 5)]
    assert dict(table) == {b"a": b"2", b"b": b"1"}
    assert batch.flushed_keys == 3
    batch.flush()  # nothing buffered: nothing written
    assert len(table.writes) == 3


class FakeStream:
    def __init__(self, batches: list[list[FakeEvent]], log: list[str]) -> None:
        self.batches = batches
        self.log = log

    async def noack_take(self, size: int, wait_s: float) -> AsyncIterator[list[FakeEvent]]:
        for batch in self.batches:
            assert len(batch) <= size
            yield batch

    async def ack(self, event: FakeEvent) -> None:
        event.acked = True
        self.log.append(f"ack {event.message.offset}")


class FlushLog(BatchTable):
    def __init__(self, log: list[str]) -> None:
        super().__init__(RecordingTable())
        self.log = log

    def flush(self) -> None:
        self.log.append("flush")
        super().flush()


def test_a_batch_is_handled_then_written_then_acked_and_a_bug_is_a_dead_letter() -> None:
    log: list[str] = []
    table = FlushLog(log)
    outbox = ListOutbox()

    async def handle(key: bytes | None, value: bytes | None, source: Source) -> None:
        partition = current_event().message.partition  # type: ignore[union-attr]
        log.append(f"handle {source[2]} on {partition}")
        if source[2] == 2:
            raise ValueError("a bug")
        table[key or b""] = value or b""

    stream = FakeStream([[event(0, 1), event(1, 2, b"x")], [event(0, 3)]], log)
    loop = agent_loop.batch_loop("reducer", outbox, handle, [table], 500, 0.005)

    async def drive() -> None:
        async for _ in loop(stream):  # type: ignore[arg-type]
            pass

    asyncio.run(drive())
    assert log == [
        "handle 1 on 0",
        "handle 2 on 1",
        "flush",
        "ack 1",
        "ack 2",
        "handle 3 on 0",
        "flush",
        "ack 3",
    ]
    assert len(outbox.on("omninode.deadletters")) == 1  # the bug: record 2, stage internal


def test_tables_that_cannot_be_written_end_the_process_unacked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exits: list[int] = []

    class Broken(BatchTable):
        def flush(self) -> None:
            raise OSError("disk full")

    def fake_exit(status: int) -> None:
        exits.append(status)
        raise SystemExit(status)

    monkeypatch.setattr(agent_loop.os, "_exit", fake_exit)
    log: list[str] = []
    stream = FakeStream([[event(0, 1)]], log)

    async def handle(key: bytes | None, value: bytes | None, source: Source) -> None:
        return None

    loop = agent_loop.batch_loop("reducer", ListOutbox(), handle, [Broken({})], 10, 0.0)

    async def drive() -> None:
        async for _ in loop(stream):  # type: ignore[arg-type]
            pass

    with pytest.raises(SystemExit):
        asyncio.run(drive())
    assert exits == [70] and log == []  # nothing acked
