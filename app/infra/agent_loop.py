"""The agents' record loops: one record at a time, or (the reducer) in batches.

Both feed raw records (so bad ones can be dead-lettered) to a handler, with the record's
key and correlation in the logs, its trace context current and Faust's current event set
to it, so table reads and writes use its partition (``handle_record``). A bug
in a handler dead-letters that record at stage ``internal`` and the loop goes on.

The batched loop takes up to ``size`` records, waiting at most ``wait_s`` for more
(:func:`take_batches`: nothing is acked by Faust itself), handles them in order with
Faust's "current event" set to each, writes the tables' buffered values once per key
(:class:`app.infra.batch_table.BatchTable`), hands the batch's sends to the producer
(:mod:`app.infra.send_batches`: one producer batch per topic partition, changelog records
included), and only then acks every record of the batch. If the tables cannot be written
or the producer refuses the sends, the process exits at once (status 70): acking would
lose the batch, and an agent restarted in place would leave it unacked and the partition
stuck; a restarted worker gets the records again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from faust.types import EventT, StreamT

from app.infra import batch_table, log_context, tracing
from app.infra.outbox import Outbox, Source, send_dead_letter
from app.infra.send_batches import SendFailed

log = logging.getLogger("omninode")
Handle = Callable[[bytes | None, bytes | None, Source], Coroutine[Any, Any, None]]
EX_SOFTWARE = 70
RECORDS_PER_TAKE = 500  # one-at-a-time agents: records taken from the queue at once


async def handle_record(name: str, event: EventT[bytes], outbox: Outbox, handle: Handle) -> None:
    message = event.message
    source = (message.topic, message.partition, message.offset)
    try:
        with (
            batch_table.handling(event),  # Faust's table reads and writes use its partition
            log_context.handling(message.key),
            tracing.consumed(f"omninode.{name}", message.headers, source),
        ):
            await handle(message.key, message.value, source)
    except Exception as exc:  # a bug must not stop the agent or lose the record
        log.exception("omninode.%s failed on %s@%s:%s", name, *source)
        reason = f"internal error: {type(exc).__name__}: {exc}"
        await send_dead_letter(outbox, reason, "internal", source, message.key, message.value)


def record_loop(name: str, outbox: Outbox, handle: Handle, concurrency: int = 1) -> RecordLoop:
    return RecordLoop(name, outbox, handle, concurrency)


@dataclass(frozen=True)
class RecordLoop:
    """Each record handled and then acked on its own, at most ``concurrency`` at once.

    Records are taken from the stream's queue in batches (:func:`take_batches`), so
    Faust's per-record iterator is not paid; with ``concurrency`` 1 they are handled in
    order, one after the other, as Faust's stream does. With more, each record runs in a
    task of its own as soon as one of the ``concurrency`` slots is free (back-pressure:
    nothing more is taken meanwhile), and is acked when done: Faust commits a partition
    only up to its lowest unacked offset, so acks out of order are safe. This replaces
    Faust's ``concurrency=N`` actors, which each pay the iterator per record.
    """

    name: str
    outbox: Outbox
    handle: Handle
    concurrency: int = 1

    def __call__(self, stream: StreamT[bytes]) -> AsyncIterator[None]:
        return self._in_order(stream) if self.concurrency <= 1 else self._pooled(stream)

    async def _in_order(self, stream: StreamT[bytes]) -> AsyncIterator[None]:
        async for events in take_batches(stream, RECORDS_PER_TAKE, 0.0):
            for event in events:
                await self._handle_and_ack(stream, event)
            yield None

    async def _pooled(self, stream: StreamT[bytes]) -> AsyncIterator[None]:
        slots = asyncio.Semaphore(self.concurrency)
        running: set[asyncio.Task[None]] = set()

        async def run(event: EventT[bytes]) -> None:
            try:
                await self._handle_and_ack(stream, event)
            finally:
                slots.release()

        try:
            async for events in take_batches(stream, self.concurrency, 0.0):
                for event in events:
                    await slots.acquire()
                    task = asyncio.create_task(run(event))
                    running.add(task)
                    task.add_done_callback(running.discard)
                yield None
        finally:
            for task in list(running):  # the agent stops: so do the records it runs
                task.cancel()

    async def _handle_and_ack(self, stream: StreamT[bytes], event: EventT[bytes]) -> None:
        await handle_record(self.name, event, self.outbox, self.handle)
        await ack(stream, (event,))


def batch_loop(
    name: str,
    outbox: Outbox,
    handle: Handle,
    tables: Sequence[batch_table.BatchTable],
    size: int,
    wait_s: float,
    sending: Callable[[], AbstractAsyncContextManager[None]] = contextlib.nullcontext,
) -> Callable[[StreamT[bytes]], AsyncIterator[None]]:
    """``sending`` wraps the handling and the table writes of each batch: the outbox's
    ``batched`` hands the batch's records (changelog records included) to the producer as
    it ends, before the batch is acked."""

    async def agent(stream: StreamT[bytes]) -> AsyncIterator[None]:
        async for events in take_batches(stream, size, wait_s):
            try:
                async with sending():
                    for event in events:
                        await handle_record(name, event, outbox, handle)
                    flush(tables)  # changelog records join the batch's sends
            except SendFailed:
                _exit_unacked("cannot hand the batch's records to the producer")
            await ack(stream, events)
            yield None

    return agent


async def take_batches(
    stream: StreamT[bytes], size: int, wait_s: float
) -> AsyncIterator[list[EventT[bytes]]]:
    """The records of ``stream``'s channel in batches, tracked for acking but not acked.

    Faust's stream iterator (which ``take``/``noack_take`` build on) runs per record: a
    pass through the event loop, sensors, processors and the current-event variable.
    This reads the channel's queue directly and does, per batch, what the iterator does
    per record and what offset commits depend on: drop records of an older consumer
    generation or taken while flow control is suspended (acked, as Faust does), and
    track the rest as unacked, so no commit passes them before :func:`ack`.
    """
    app, queue = stream.app, stream.channel.queue  # type: ignore[attr-defined]
    consumer, acking_topics = app.consumer, app.topics.acking_topics
    on_message_in = app.sensors.on_message_in  # Faust's monitor: read offsets (lag)
    while not stream.should_stop:
        try:
            taken = await _take(queue, size, wait_s)
        except StopAsyncIteration:  # thrown into the queue when the agent stops (as Faust's)
            return
        generation, active = app.consumer_generation_id, app.flow_control.is_active()
        batch: list[EventT[bytes]] = []
        for event in taken:
            message = event.message
            if not active or message.generation_id != generation:
                event.ack()
                continue
            if message.topic in acking_topics and not message.tracked:
                message.tracked = True
                consumer.unacked.add(message)
                on_message_in(message.tp, message.offset, message)
            batch.append(event)
        if batch:
            yield batch


async def _take(queue: Any, size: int, wait_s: float) -> list[Any]:
    """The first record when there is one, then what is queued, waiting at most
    ``wait_s`` for the rest of ``size``."""
    taken = [await queue.get()]
    deadline: float | None = None
    loop = asyncio.get_running_loop()
    while len(taken) < size:
        if not queue.empty():
            taken.append(queue.get_nowait())
            continue
        if deadline is None:
            deadline = loop.time() + wait_s
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        try:
            taken.append(await asyncio.wait_for(queue.get(), remaining))
        except TimeoutError:
            break
    return taken


async def ack(stream: StreamT[bytes], events: Sequence[EventT[bytes]]) -> None:
    """Ack each record (Faust's last reference to a message acks it with the consumer)."""
    on_message_out = stream.app.sensors.on_message_out
    for event in events:
        if event.ack():
            message = event.message
            on_message_out(message.tp, message.offset, message)


def flush(tables: Sequence[batch_table.BatchTable]) -> None:
    try:
        for table in tables:
            table.flush()
    except Exception:
        _exit_unacked("cannot write the tables")


def _exit_unacked(why: str) -> None:
    log.critical("omninode: %s; exiting unacked", why, exc_info=True)
    logging.shutdown()
    os._exit(EX_SOFTWARE)
