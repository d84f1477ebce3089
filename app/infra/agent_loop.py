"""The agents' record loops: one record at a time, or (the reducer) in batches.

Both feed raw records (so bad ones can be dead-lettered) to a handler, with the record's
key and correlation in the logs and its trace context current (``handle_record``). A bug
in a handler dead-letters that record at stage ``internal`` and the loop goes on.

The batched loop takes up to ``size`` records, waiting at most ``wait_s`` for more
(``noack_take``: nothing is acked by Faust itself), handles them in order with Faust's
"current event" set to each, writes the tables' buffered values once per key
(:class:`app.infra.batch_table.BatchTable`), and only then acks every record of the batch.
If the tables cannot be written, the process exits at once (status 70): acking would
lose the batch, and an agent restarted in place would leave it unacked and the partition
stuck; a restarted worker gets the records again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any

from faust.types import EventT, StreamT

from app.infra import batch_table, log_context, tracing
from app.infra.outbox import Outbox, Source, send_dead_letter

log = logging.getLogger("omninode")
Handle = Callable[[bytes | None, bytes | None, Source], Coroutine[Any, Any, None]]
EX_SOFTWARE = 70


async def handle_record(name: str, event: EventT[bytes], outbox: Outbox, handle: Handle) -> None:
    message = event.message
    source = (message.topic, message.partition, message.offset)
    try:
        with (
            log_context.handling(message.key),
            tracing.consumed(f"omninode.{name}", message.headers, source),
        ):
            await handle(message.key, message.value, source)
    except Exception as exc:  # a bug must not stop the agent or lose the record
        log.exception("omninode.%s failed on %s@%s:%s", name, *source)
        reason = f"internal error: {type(exc).__name__}: {exc}"
        await send_dead_letter(outbox, reason, "internal", source, message.key, message.value)


def record_loop(
    name: str, outbox: Outbox, handle: Handle
) -> Callable[[StreamT[bytes]], AsyncIterator[None]]:
    async def agent(stream: StreamT[bytes]) -> AsyncIterator[None]:
        async for event in stream.events():
            await handle_record(name, event, outbox, handle)
            yield None

    return agent


def batch_loop(
    name: str,
    outbox: Outbox,
    handle: Handle,
    tables: Sequence[batch_table.BatchTable],
    size: int,
    wait_s: float,
) -> Callable[[StreamT[bytes]], AsyncIterator[None]]:
    async def agent(stream: StreamT[bytes]) -> AsyncIterator[None]:
        events: list[EventT[bytes]]
        async for events in stream.noack_take(size, wait_s):  # type: ignore[attr-defined]
            for event in events:
                with batch_table.handling(event):
                    await handle_record(name, event, outbox, handle)
            flush(tables)
            for event in events:
                await stream.ack(event)
            yield None

    return agent


def flush(tables: Sequence[batch_table.BatchTable]) -> None:
    try:
        for table in tables:
            table.flush()
    except Exception:
        log.critical("omninode: cannot write the tables; exiting unacked", exc_info=True)
        logging.shutdown()
        os._exit(EX_SOFTWARE)
