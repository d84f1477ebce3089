"""The reducer's batches: write-behind tables (reads see the batch's writes, each key is
written once, on the partition of the record that last wrote it) and the loop's order:
every record handled, then the tables written, then the batch acked."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from faust.streams import current_event

from app.infra import agent_loop
from app.infra.batch_table import BatchTable, handling
from app.infra.outbox import Source
from app.infra.send_batches import SendFailed
from tests.helpers import ListOutbox


@dataclass(eq=False)  # hashed by identity, as Faust's messages are
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Any = None
    generation_id: int = 1
    tracked: bool = False
    refcount: int = 1

    @property
    def tp(self) -> tuple[str, int]:
        return (self.topic, self.partition)


@dataclass
class FakeEvent:
    message: Message
    log: list[str] | None = None
    acked: bool = False

    def ack(self) -> bool:
        """Faust's Event.ack: the last reference acks the message with the consumer."""
        self.message.refcount -= 1
        if self.message.refcount:
            return False
        self.acked = True
        if self.log is not None:
            self.log.append(f"ack {self.message.offset}")
        return True


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


class FakeApp:
    """The parts of a Faust app that Faust's stream iterator (and take_batches) use."""

    def __init__(self) -> None:
        self.consumer = SimpleNamespace(unacked=set())
        self.topics = SimpleNamespace(acking_topics={"omninode.events"})
        self.consumer_generation_id = 1
        self.flow_control = SimpleNamespace(is_active=lambda: True)
        self.read: list[int] = []
        self.out: list[int] = []
        self.sensors = SimpleNamespace(
            on_message_in=lambda tp, offset, message: self.read.append(offset),
            on_message_out=lambda tp, offset, message: self.out.append(offset),
        )


class FakeStream:
    """A stream whose channel queue holds ``events`` and then ends the stream."""

    def __init__(self, events: list[FakeEvent], log: list[str] | None = None) -> None:
        self.app = FakeApp()
        self.queue: asyncio.Queue[FakeEvent] = asyncio.Queue()
        for event in events:
            event.log = log
            self.queue.put_nowait(event)
        self.channel = SimpleNamespace(queue=self.queue)

    @property
    def should_stop(self) -> bool:
        return self.queue.empty()


class RunningStream(FakeStream):
    """A stream that runs until its agent is cancelled, as Faust's do."""

    @property
    def should_stop(self) -> bool:
        return False


def running_agent(loop: Any, stream: FakeStream) -> asyncio.Task[None]:
    """The agent ``loop`` over ``stream``, as Faust runs it: a task, stopped by cancelling."""

    async def consume() -> None:
        async for _ in loop(stream):
            pass

    return asyncio.create_task(consume())


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

    stream = FakeStream([event(0, 1), event(1, 2, b"x"), event(0, 3)], log)
    loop = agent_loop.batch_loop("reducer", outbox, handle, [table], 2, 0.005)

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


@pytest.fixture
def exits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """agent_loop's ``os._exit``, replaced: each status is kept and SystemExit raised."""
    statuses: list[int] = []

    def fake_exit(status: int) -> None:
        statuses.append(status)
        raise SystemExit(status)

    monkeypatch.setattr(agent_loop.os, "_exit", fake_exit)
    return statuses


def test_tables_that_cannot_be_written_end_the_process_unacked(exits: list[int]) -> None:
    class Broken(BatchTable):
        def flush(self) -> None:
            raise OSError("disk full")

    log: list[str] = []
    stream = FakeStream([event(0, 1)], log)

    async def handle(key: bytes | None, value: bytes | None, source: Source) -> None:
        return None

    loop = agent_loop.batch_loop("reducer", ListOutbox(), handle, [Broken({})], 10, 0.0)

    async def drive() -> None:
        async for _ in loop(stream):  # type: ignore[arg-type]
            pass

    with pytest.raises(SystemExit):
        asyncio.run(drive())
    assert exits == [70] and log == []  # nothing acked


def sending_logged(log: list[str], fail: bool = False) -> Any:
    @contextlib.asynccontextmanager
    async def sending() -> AsyncIterator[None]:
        log.append("batching")
        yield
        if fail:
            raise SendFailed("cannot send to journal[0]: KafkaTimeoutError()")
        log.append("handed to the producer")

    return sending


def test_a_batch_s_tables_are_written_then_its_sends_handed_over_then_it_is_acked() -> None:
    log: list[str] = []
    table = FlushLog(log)

    async def handle(key: bytes | None, value: bytes | None, source: Source) -> None:
        log.append(f"handle {source[2]}")

    stream = FakeStream([event(0, 1), event(1, 2)], log)
    loop = agent_loop.batch_loop(
        "reducer", ListOutbox(), handle, [table], 2, 0.0, sending=sending_logged(log)
    )

    async def drive() -> None:
        async for _ in loop(stream):  # type: ignore[arg-type]
            pass

    asyncio.run(drive())
    assert log == [
        "batching",
        "handle 1",
        "handle 2",
        "flush",
        "handed to the producer",
        "ack 1",
        "ack 2",
    ]


def test_sends_the_producer_refuses_end_the_process_unacked(exits: list[int]) -> None:
    log: list[str] = []

    async def handle(key: bytes | None, value: bytes | None, source: Source) -> None:
        log.append(f"handle {source[2]}")

    loop = agent_loop.batch_loop(
        "reducer",
        ListOutbox(),
        handle,
        [FlushLog(log)],
        10,
        0.0,
        sending=sending_logged(log, fail=True),
    )

    async def drive() -> None:
        async for _ in loop(FakeStream([event(0, 1)], log)):  # type: ignore[arg-type]
            pass

    with pytest.raises(SystemExit):
        asyncio.run(drive())
    assert exits == [70] and log == ["batching", "handle 1", "flush"]  # nothing acked


def test_take_batches_tracks_what_it_yields_and_acks_what_it_skips() -> None:
    stale = event(0, 1)
    stale.message.generation_id = 0  # fetched before the last rebalance
    events = [stale, event(0, 2), event(1, 3), event(0, 4), event(1, 5), event(0, 6)]
    stream = FakeStream(events)

    async def drive() -> list[list[int]]:
        batches = []
        async for batch in agent_loop.take_batches(stream, 2, 0.0):  # type: ignore[arg-type]
            batches.append([e.message.offset for e in batch])
            assert all(e.message in stream.app.consumer.unacked for e in batch)  # type: ignore[attr-defined]
            await agent_loop.ack(stream, batch)  # type: ignore[arg-type]
        return batches

    assert asyncio.run(drive()) == [[2], [3, 4], [5, 6]]  # the first batch lost the stale record
    assert stale.acked and not stale.message.tracked  # acked as Faust acks what it skips
    assert stream.app.read == [2, 3, 4, 5, 6] and stream.app.out == [2, 3, 4, 5, 6]


def test_take_batches_waits_at_most_wait_s_for_a_fuller_batch() -> None:
    async def drive(wait_s: float) -> list[int]:
        stream = FakeStream([event(0, 1)])
        later = event(0, 2)

        async def produce_later() -> None:
            await asyncio.sleep(0.02)
            stream.queue.put_nowait(later)

        task = asyncio.create_task(produce_later())
        batches = agent_loop.take_batches(stream, 10, wait_s)  # type: ignore[arg-type]
        first = await batches.__anext__()
        await task
        return [e.message.offset for e in first]

    assert asyncio.run(drive(1.0)) == [1, 2]  # the second record came within the wait
    assert asyncio.run(drive(0.0)) == [1]  # no wait: what was queued


def test_a_message_shared_with_another_stream_is_acked_by_the_last_one() -> None:
    shared = event(0, 1)
    shared.message.refcount = 2  # another channel holds it too
    stream = FakeStream([shared])

    async def drive() -> None:
        async for batch in agent_loop.take_batches(stream, 10, 0.0):  # type: ignore[arg-type]
            await agent_loop.ack(stream, batch)  # type: ignore[arg-type]

    asyncio.run(drive())
    assert not shared.acked and stream.app.out == []


def test_a_record_loop_handles_and_acks_each_record_in_order() -> None:
    log: list[str] = []
    stream = FakeStream([event(0, 1), event(1, 2), event(0, 3)], log)

    async def handle(key: bytes | None, value: bytes | None, source: Source) -> None:
        log.append(f"handle {source[2]} on {current_event().message.partition}")  # type: ignore[union-attr]

    async def drive() -> None:
        loop = agent_loop.record_loop("projector", ListOutbox(), handle)
        async for _ in loop(stream):  # type: ignore[arg-type]
            pass

    asyncio.run(drive())
    assert log == ["handle 1 on 0", "ack 1", "handle 2 on 1", "ack 2", "handle 3 on 0", "ack 3"]


def test_a_pooled_record_loop_runs_at_most_its_concurrency_and_acks_each_when_done() -> None:
    log: list[str] = []
    events = [event(n % 2, n) for n in range(1, 9)]

    stream = RunningStream(events, log)
    running, most = 0, 0

    async def handle(key: bytes | None, value: bytes | None, source: Source) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.02 if source[2] % 3 == 0 else 0.001)  # some finish later
        running -= 1

    async def drive() -> None:
        agent = running_agent(
            agent_loop.record_loop("commands.default", ListOutbox(), handle, 3), stream
        )
        while not all(e.acked for e in events):
            await asyncio.sleep(0.005)
        agent.cancel()

    asyncio.run(drive())
    assert most == 3  # as many at once as the concurrency, never more
    acks = [line for line in log if line.startswith("ack")]
    assert sorted(acks) == sorted(f"ack {n}" for n in range(1, 9))
    assert acks != [f"ack {n}" for n in range(1, 9)]  # slow ones were acked after later ones


def test_a_pooled_record_loop_that_stops_cancels_its_records_and_leaves_them_unacked() -> None:
    stuck = event(0, 1)
    cancelled: list[int] = []
    stream = RunningStream([stuck], [])

    async def handle(key: bytes | None, value: bytes | None, source: Source) -> None:
        try:
            await asyncio.Event().wait()  # a handler that never returns
        except asyncio.CancelledError:
            cancelled.append(source[2])
            raise

    async def drive() -> None:
        agent = running_agent(
            agent_loop.record_loop("commands.default", ListOutbox(), handle, 2), stream
        )
        await asyncio.sleep(0.02)
        agent.cancel()
        await asyncio.gather(agent, return_exceptions=True)
        await asyncio.sleep(0)

    asyncio.run(drive())
    assert cancelled == [1] and not stuck.acked  # redelivered to whoever gets the partition


def test_take_batches_ends_when_faust_throws_stop_iteration_into_the_queue() -> None:
    stream = RunningStream([])

    async def drive() -> list[object]:
        async def stop_later() -> None:
            await asyncio.sleep(0.01)
            for getter in stream.queue._getters:  # type: ignore[attr-defined]
                getter.set_exception(StopAsyncIteration())  # Faust's channel.throw on stop

        task = asyncio.create_task(stop_later())
        batches = [b async for b in agent_loop.take_batches(stream, 10, 0.0)]  # type: ignore[arg-type]
        await task
        return batches

    assert asyncio.run(drive()) == []  # ended, not crashed
