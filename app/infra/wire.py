"""Typed records <-> Avro bytes: the only place that knows both shapes.

Every record on the wire has a frozen, typed form and one encoder and one decoder here:
``Event``, ``Command``, ``JournalRecord`` (``app.spi.envelopes``), ``DeadLetter`` (below),
``InstanceView`` (``projectors.instances``) and ``StateCount`` (``projectors.state_counts``).
Every decoder raises one error type, :class:`AvroDecodeError`, with the reason, for bytes
that are not the record: callers catch that and nothing else.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, ParamSpec, TypeVar, cast

from app.core.durations import format_instant
from app.infra.avro import AvroDecodeError, codec, json_object
from app.spi.envelopes import (
    ChildRun,
    Command,
    DispatchKind,
    DispatchMode,
    Event,
    InstanceStatus,
    JournalRecord,
    RetryPolicy,
)
from app.spi.limits import DEFAULT_LIMITS, canonical_json
from projectors.instances import InstanceView
from projectors.state_counts import StateCount

EVENT = "omninode.Event"
COMMAND = "omninode.Command"
JOURNAL = "omninode.JournalRecord"
DEAD_LETTER = "omninode.DeadLetter"
INSTANCE_VIEW = "omninode.InstanceView"
STATE_COUNT = "omninode.StateCount"

P = ParamSpec("P")
T = TypeVar("T")


def decoder(decode: Callable[P, T]) -> Callable[P, T]:
    """A decoder that raises only :class:`AvroDecodeError`: a record that decodes as Avro
    but does not map to its typed form (a missing field, a value of the wrong type or
    range, nesting too deep) is one too, with the same message."""

    @functools.wraps(decode)
    def decoding(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return decode(*args, **kwargs)
        except AvroDecodeError:
            raise
        except (KeyError, TypeError, ValueError, RecursionError) as exc:
            raise AvroDecodeError(str(exc)) from exc

    return decoding


def utc_now() -> str:
    """Wall-clock time in the core's canonical instant format (millisecond precision, UTC)."""
    return format_instant(time.time_ns() // 1_000_000)


def event_record(event: Event, seq: int | None = None) -> dict[str, Any]:
    """The envelope's own dict, with the payload as JSON text and the journal's seq."""
    payload = canonical_json(dict(event.payload)) if event.payload else "{}"
    return {**event.to_dict(), "seq": seq, "payload": payload}


def event_from_record(record: dict[str, Any], max_depth: int = DEFAULT_LIMITS.json_depth) -> Event:
    payload = json_object(record["payload"], "event payload", max_depth)
    return Event.from_dict({**record, "payload": payload})


def encode_event(event: Event) -> bytes:
    return codec(EVENT).encode(event_record(event))


@decoder
def decode_event(data: bytes | None, max_depth: int = DEFAULT_LIMITS.json_depth) -> Event:
    return event_from_record(codec(EVENT).decode(data), max_depth)


def encode_command(command: Command) -> bytes:
    retry = command.retry
    return codec(COMMAND).encode(
        {
            "command_id": command.command_id,
            "workflow_type": command.workflow_type,
            "instance_id": command.instance_id,
            "seq": command.seq,
            "kind": command.kind,
            "name": command.name,
            "mode": command.mode,
            "input": canonical_json(dict(command.input)),
            "retry": {
                "max_attempts": retry.max_attempts,
                "backoff": retry.backoff,
                "initial_ms": retry.initial_ms,
                "max_ms": retry.max_ms,
            },
            "timeout_ms": command.timeout_ms,
            "compensate": command.compensate,
            "compensation_of": command.compensation_of,
            "queue": command.queue,
        }
    )


@decoder
def decode_command(data: bytes | None) -> Command:
    record = codec(COMMAND).decode(data)
    retry = record["retry"]
    return Command(
        command_id=record["command_id"],
        workflow_type=record["workflow_type"],
        instance_id=record["instance_id"],
        seq=record["seq"],
        kind=cast(DispatchKind, record["kind"]),
        name=record["name"],
        mode=cast(DispatchMode, record["mode"]),
        input=json_object(record["input"], "command input"),
        retry=RetryPolicy(
            retry["max_attempts"], retry["backoff"], retry["initial_ms"], retry["max_ms"]
        ),
        timeout_ms=record["timeout_ms"],
        compensate=record["compensate"],
        compensation_of=record["compensation_of"],
        queue=record["queue"],
    )


def encode_journal(record: JournalRecord) -> bytes:
    return codec(JOURNAL).encode(
        {
            "seq": record.seq,
            "workflow_version": record.workflow_version,
            "event": event_record(record.event, record.seq),
            "ignored": record.ignored,
            "status": record.status,
            "configuration": list(record.configuration),
            "reason": record.reason,
            "raised": list(record.raised),
            "children": [c.to_dict() for c in record.children]
            if record.children is not None
            else None,
            "outputs": record.outputs,
        }
    )


@decoder
def decode_journal(data: bytes | None) -> JournalRecord:
    raw = codec(JOURNAL).decode(data)
    children = raw["children"]
    return JournalRecord(
        seq=raw["seq"],
        event=event_from_record(raw["event"]),
        ignored=raw["ignored"],
        status=cast(InstanceStatus, raw["status"]),
        workflow_version=raw["workflow_version"],
        configuration=tuple(raw["configuration"]),
        reason=raw["reason"],
        raised=tuple(raw["raised"]),
        children=tuple(ChildRun(**c) for c in children) if children is not None else None,
        outputs=raw["outputs"],
    )


# A dead letter must always fit in one Kafka record (1 MiB by default), whatever it holds.
DEAD_LETTER_VALUE_BYTES = 512 * 1024  # kept whole up to this size
DEAD_LETTER_PREFIX_BYTES = 4 * 1024  # beyond it, only this prefix
DEAD_LETTER_KEY_BYTES = 1024
DEAD_LETTER_REASON_CHARS = 4000


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record on the dead-letter topic (``omninode.DeadLetter``), field for field."""

    reason: str
    stage: str  # decode | route | step | handler | internal
    source_topic: str
    source_partition: int
    source_offset: int
    key: bytes | None
    value: bytes | None  # whole up to DEAD_LETTER_VALUE_BYTES, else only a prefix
    value_size: int  # bytes of the original value
    value_sha256: str | None  # hex SHA-256 of the original value
    value_truncated: bool  # True: ``value`` is a prefix, and the letter cannot be replayed
    workflow_type: str | None
    instance_id: str | None
    event_type: str | None
    failed_at: str

    def to_dict(self) -> dict[str, Any]:
        """The Avro record's fields by name, in the schema's order (what ``omninode dlq``
        prints)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def make_letter(
    reason: str,
    stage: str,
    source: tuple[str, int, int],
    key: bytes | None,
    value: bytes | None,
    event: Event | None = None,
    *,
    workflow_type: str | None = None,
    instance_id: str | None = None,
) -> DeadLetter:
    """A dead letter: the original bytes (a bounded prefix of oversized ones, with their
    size and hash), the reason and where they came from, and the instance when the event,
    the caller or the key (``workflowType:instanceId``) tells it."""
    topic, partition, offset = source
    if event is not None:
        workflow_type, instance_id = event.workflow_type, event.instance_id
    elif workflow_type is None and instance_id is None:
        workflow_type, instance_id = _instance_of_key(key)
    size = len(value) if value is not None else 0
    truncated = size > DEAD_LETTER_VALUE_BYTES
    if len(reason) > DEAD_LETTER_REASON_CHARS:
        reason = reason[:DEAD_LETTER_REASON_CHARS] + f"... ({len(reason)} characters)"
    return DeadLetter(
        reason=reason,
        stage=stage,
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        key=key[:DEAD_LETTER_KEY_BYTES] if key is not None else None,
        value=value[:DEAD_LETTER_PREFIX_BYTES] if truncated and value else value,
        value_size=size,
        value_sha256=hashlib.sha256(value).hexdigest() if value is not None else None,
        value_truncated=truncated,
        workflow_type=workflow_type,
        instance_id=instance_id,
        event_type=event.type if event else None,
        failed_at=utc_now(),
    )


def encode_letter(letter: DeadLetter) -> bytes:
    return codec(DEAD_LETTER).encode(letter.to_dict())


@decoder
def decode_letter(data: bytes | None) -> DeadLetter:
    return DeadLetter(**codec(DEAD_LETTER).decode(data))


def dead_letter(
    reason: str,
    stage: str,
    source: tuple[str, int, int],
    key: bytes | None,
    value: bytes | None,
    event: Event | None = None,
    *,
    workflow_type: str | None = None,
    instance_id: str | None = None,
) -> bytes:
    """The encoded :func:`make_letter`."""
    letter = make_letter(
        reason,
        stage,
        source,
        key,
        value,
        event,
        workflow_type=workflow_type,
        instance_id=instance_id,
    )
    return encode_letter(letter)


def _instance_of_key(key: bytes | None) -> tuple[str | None, str | None]:
    text = key.decode("utf-8", "replace") if key and len(key) <= DEAD_LETTER_KEY_BYTES else ""
    workflow_type, colon, instance_id = text.partition(":")
    return (workflow_type, instance_id) if colon and workflow_type and instance_id else (None, None)


def decode_dead_letter(data: bytes | None) -> dict[str, Any]:
    """A dead letter as the plain dict of its fields (``decode_letter(data).to_dict()``)."""
    return decode_letter(data).to_dict()


def encode_instance_view(view: InstanceView) -> bytes:
    return codec(INSTANCE_VIEW).encode(view.to_record())


@decoder
def decode_instance_view(data: bytes | None) -> InstanceView:
    return InstanceView.from_record(codec(INSTANCE_VIEW).decode(data))


def encode_state_count(count: StateCount) -> bytes:
    return codec(STATE_COUNT).encode(count.to_record())


@decoder
def decode_state_count(data: bytes | None) -> StateCount:
    return StateCount.from_record(codec(STATE_COUNT).decode(data))


__all__ = ["AvroDecodeError"]
