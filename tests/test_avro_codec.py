"""Avro codec: events and commands round-trip in Confluent wire format; bad bytes are decode errors with a reason."""

from __future__ import annotations

import pytest

from app.infra.avro import SCHEMA_DIR, AvroCodec, AvroDecodeError, codec
from app.infra.wire import (
    decode_command,
    decode_event,
    decode_journal,
    encode_command,
    encode_event,
    event_record,
)
from app.spi.envelopes import Command, Event, ParentRef, RetryPolicy

EVENT = Event(
    "w",
    "i-1",
    "PAY",
    "e-1",
    "2026-01-01T00:00:00Z",
    {"amount": 4.5, "n": [1]},
    dispatch_id="d",
    correlation_id="c",
)


def test_an_event_round_trips_in_confluent_wire_format() -> None:
    data = encode_event(EVENT)
    assert data[0] == 0 and int.from_bytes(data[1:5]) == codec("omninode.Event").schema_id
    assert decode_event(data) == EVENT


def test_a_command_round_trips() -> None:
    command = Command(
        "w:i:2:1",
        "w",
        "i",
        2,
        "effect",
        "charge",
        "await",
        {"a": 1},
        RetryPolicy(5, "fixed", 10, 20),
        3000,
        "refund",
        None,
    )
    assert decode_command(encode_command(command)) == command


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not a omninode.Event record: 0 bytes"),
        (b"\x01\x00\x00\x00\x01xx", "not Confluent wire format (magic byte 1)"),
        (b"\x00\x00\x00\x00\x01xx", "schema id 1 is not omninode.Event"),
        (encode_event(EVENT)[:12], "corrupt omninode.Event record"),
    ],
)
def test_bad_bytes_are_decode_errors_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(AvroDecodeError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        decode_event(data)


def test_records_written_with_the_previous_schemas_are_read_into_the_current_ones() -> None:
    """A journal written before RSS v1.1 (avro_schemas/history/v1) stays readable: the old
    id is known, and the new fields take their defaults."""
    old_journal = AvroCodec("omninode.JournalRecord", SCHEMA_DIR / "history" / "v1")
    assert old_journal.schema_id != codec("omninode.JournalRecord").schema_id
    raw = event_record(EVENT, 3)
    del raw["parent"], raw["version"]
    record = {
        "seq": 3,
        "workflow_version": 1,
        "event": raw,
        "ignored": False,
        "status": "active",
        "configuration": ["a"],
        "reason": None,
    }
    decoded = decode_journal(old_journal.encode(record))
    assert decoded.event == EVENT and decoded.seq == 3
    assert decoded.raised == () and decoded.children is None
    old_event = AvroCodec("omninode.Event", SCHEMA_DIR / "history" / "v1")
    assert decode_event(old_event.encode(raw)) == EVENT


def test_a_child_start_round_trips_with_its_parent_and_pinned_version() -> None:
    start = Event(
        "shipment",
        "o-1.ship.3",
        "$start",
        "order:o-1:3:1",
        "2026-01-01T00:00:00Z",
        {"order_id": "o-1"},
        parent=ParentRef("order", "o-1", "ship", "order:o-1:3:1"),
        version=2,
    )
    assert decode_event(encode_event(start)) == start
