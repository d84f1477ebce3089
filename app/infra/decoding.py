"""Decode an inbound record, or dead-letter it: the first thing every agent does.

Every decoder in ``app.infra.wire`` raises only ``AvroDecodeError``; :func:`decoded` turns
one into a dead letter at stage ``decode`` with the reason ``undecodable <what>: <why>``
and the original key and bytes, so no agent needs its own list of exceptions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import TypeVar

from app.infra.outbox import Outbox, Source, send_dead_letter
from app.infra.wire import AvroDecodeError

T = TypeVar("T")
# (reason, stage, source, key, value): an outbox's way of sending one dead letter
DeadLetterFn = Callable[[str, str, Source, bytes | None, bytes | None], Awaitable[None]]


async def decoded(
    decode: Callable[[bytes | None], T],
    key: bytes | None,
    value: bytes | None,
    source: Source,
    dead_letter: DeadLetterFn,
    what: str,
) -> T | None:
    """``decode(value)``; None when it raises, after sending the record to dead letters."""
    try:
        return decode(value)
    except AvroDecodeError as exc:
        await dead_letter(f"undecodable {what}: {exc}", "decode", source, key, value)
        return None


def dead_letters_of(outbox: Outbox) -> DeadLetterFn:
    """An agent outbox's way of sending one dead letter."""
    return partial(send_dead_letter, outbox)
