"""Decode an inbound record, or dead-letter it: the first thing every agent does.

Every decoder in ``app.infra.wire`` raises only ``AvroDecodeError``; :func:`decoded` turns
one into a dead letter at stage ``decode`` with the reason ``undecodable <what>: <why>``
and the original key and bytes, so no agent needs its own list of exceptions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from app.infra.outbox import Outbox, Source, send_dead_letter
from app.infra.wire import AvroDecodeError

T = TypeVar("T")


async def decoded(
    decode: Callable[[bytes | None], T],
    key: bytes | None,
    value: bytes | None,
    source: Source,
    outbox: Outbox,
    what: str,
) -> T | None:
    """``decode(value)``; None when it raises, after sending the record to dead letters."""
    try:
        return decode(value)
    except AvroDecodeError as exc:
        reason = f"undecodable {what}: {exc}"
        await send_dead_letter(outbox, reason, "decode", source, key, value)
        return None
