"""Talking to a running deployment: send events, read snapshots, journals and dead letters.

Used by the CLI (start, send, status, history, dev) and by the integration tests, so both
exercise the same paths a user does.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from app.core.snapshot import Snapshot
from app.infra import topics
from app.infra.instance_store import decode_stored
from app.infra.kafka_client import produce, read_key, read_topic
from app.infra.kafka_journal import read_journal
from app.infra.settings import Settings
from app.infra.wire import (
    AvroDecodeError,
    decode_command,
    decode_event,
    decode_letter,
    encode_event,
    utc_now,
)
from app.spi.envelopes import Command, Event, JournalRecord, instance_key


def new_event(
    workflow: str,
    instance_id: str,
    event_type: str,
    payload: Mapping[str, Any] | None = None,
    event_id: str | None = None,
) -> Event:
    return Event(
        workflow_type=workflow,
        instance_id=instance_id,
        type=event_type,
        event_id=event_id or str(uuid.uuid4()),
        occurred_at=utc_now(),
        payload=dict(payload or {}),
    )


async def send_events(settings: Settings, events: list[Event]) -> None:
    records = [(settings.topic(topics.EVENTS), e.key.encode(), encode_event(e)) for e in events]
    await produce(settings, records)


async def read_snapshot(settings: Settings, workflow: str, instance_id: str) -> Snapshot | None:
    """The instance's latest snapshot, from the snapshot table's changelog."""
    key = instance_key(workflow, instance_id).encode()
    topic = settings.changelog_topic(topics.SNAPSHOT_TABLE)
    records = await read_key(settings, topic, key)
    latest = next((r.value for r in reversed(records)), None)
    return decode_stored(latest).snapshot if latest else None


async def read_history(settings: Settings, workflow: str, instance_id: str) -> list[JournalRecord]:
    """The instance's journal in seq order, de-duplicated by seq (redeliveries re-emit)."""
    return await read_journal(settings, instance_key(workflow, instance_id))


UNREADABLE_STAGE = "unreadable"


async def read_dead_letters(settings: Settings) -> list[dict[str, Any]]:
    """Every dead letter, with ``id`` = its ``partition:offset`` on the dead-letter topic.

    A record on that topic that is not a dead letter we can read is listed too, with stage
    ``unreadable`` and the reason, rather than hiding every other letter behind an error.
    """
    topic = settings.topic(topics.DEAD_LETTERS)
    letters = []
    for record in await read_topic(settings, topic):
        try:
            letter = decode_letter(record.value).to_dict()
        except AvroDecodeError as exc:
            letter = {
                "reason": f"not a readable dead letter: {exc}",
                "stage": UNREADABLE_STAGE,
                "source_topic": topic,
                "source_partition": record.partition,
                "source_offset": record.offset,
                "key": record.key,
                "value": record.value,
            }
        letter["id"] = f"{record.partition}:{record.offset}"
        letters.append(letter)
    return letters


async def replay_dead_letters(settings: Settings, letters: list[dict[str, Any]]) -> None:
    """Send each letter's original key and bytes back to the topic they were read from."""
    if unreadable := [d["id"] for d in letters if d.get("stage") == UNREADABLE_STAGE]:
        raise ValueError(f"cannot replay {', '.join(unreadable)}: not a readable dead letter")
    if truncated := [d["id"] for d in letters if d.get("value_truncated")]:
        raise ValueError(
            f"cannot replay {', '.join(truncated)}: the dead letter keeps only a prefix of "
            "a record over the size limits (see value_size and value_sha256)"
        )
    records = [(d["source_topic"], d["key"], d["value"] or b"") for d in letters]
    await produce(settings, records)


def describe_record(value: bytes | None) -> dict[str, Any] | str:
    """A dead letter's original bytes, decoded if they are one of our records; anything that
    does not decode (or decodes only by going too deep) is described, never raised."""
    for decode in (decode_event, decode_command):
        try:
            decoded = decode(value)
            return decoded.to_dict() if isinstance(decoded, Event) else _command_dict(decoded)
        except AvroDecodeError:
            continue
    return f"undecodable ({len(value or b'')} bytes): {(value or b'')[:64]!r}"


def _command_dict(command: Command) -> dict[str, Any]:
    return {
        "command_id": command.command_id,
        "kind": command.kind,
        "name": command.name,
        "mode": command.mode,
        "input": dict(command.input),
    }


async def wait_for(
    settings: Settings,
    workflow: str,
    instance_id: str,
    done: Callable[[Snapshot], bool],
    timeout_s: float = 30.0,
) -> Snapshot:
    """Poll the snapshot until ``done`` holds; TimeoutError says what was last seen."""
    deadline = time.monotonic() + timeout_s
    last: Snapshot | None = None
    while time.monotonic() < deadline:
        last = await read_snapshot(settings, workflow, instance_id)
        if last is not None and done(last):
            return last
        await asyncio.sleep(0.3)
    seen = "nothing" if last is None else f"{last.status} {list(last.configuration)} seq {last.seq}"
    raise TimeoutError(
        f"{workflow}:{instance_id} not there after {timeout_s:.0f}s; last seen {seen}"
    )
