"""The one mapping layer: typed records <-> Avro bytes (app/infra/wire.py), one decode
error, one decode-or-dead-letter helper, one canonical JSON text. Every byte the runtime
writes is compared with what the raw codecs gave before the typed records existed."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.simulate import Simulator, parse_script
from app.core.snapshot import Timer, dumps, timer_firing
from app.infra import control, rebuild, topics
from app.infra.avro import AvroDecodeError, codec
from app.infra.decoding import dead_letters_of, decoded
from app.infra.kafka_client import Record
from app.infra.projector_agent import CountsProjector, InstanceProjector
from app.infra.settings import Settings
from app.infra.wire import (
    DEAD_LETTER,
    INSTANCE_VIEW,
    STATE_COUNT,
    DeadLetter,
    dead_letter,
    decode_command,
    decode_dead_letter,
    decode_event,
    decode_instance_view,
    decode_journal,
    decode_letter,
    decode_state_count,
    decoder,
    encode_event,
    encode_instance_view,
    encode_journal,
    encode_letter,
    encode_state_count,
    make_letter,
)
from app.spi.envelopes import Event, InstanceStatus, JournalRecord
from projectors.instances import InstanceView
from projectors.state_counts import StateCount
from tests.helpers import Driver, ListOutbox, chart

SOURCE = ("omninode.journal", 2, 9)
VIEW = InstanceView("w", "i-1", 3, "active", ("a", "b.c"), 7, "2026-01-01T00:00:00Z")
DECODERS = (
    decode_event,
    decode_command,
    decode_journal,
    decode_letter,
    decode_dead_letter,
    decode_instance_view,
    decode_state_count,
)


def journal(seq: int, configuration: tuple[str, ...], status: InstanceStatus = "active") -> bytes:
    event = Event("w", "i-1", "GO", f"e{seq}", f"2026-01-01T00:00:0{seq}Z", {"n": seq})
    return encode_journal(JournalRecord(seq, event, False, status, 3, configuration))


# --- typed records, byte for byte -------------------------------------------------------


def test_an_instance_view_encodes_as_its_record_did_and_round_trips() -> None:
    data = encode_instance_view(VIEW)
    assert data == codec(INSTANCE_VIEW).encode(VIEW.to_record())
    assert decode_instance_view(data) == VIEW


def test_a_state_count_encodes_as_its_record_did_and_round_trips() -> None:
    count = StateCount.of_key("w:b.c", -1)
    assert (count.workflow_type, count.state, count.key) == ("w", "b.c", "w:b.c")
    data = encode_state_count(count)
    record = {"workflow_type": "w", "state": "b.c", "count": -1}
    assert data == codec(STATE_COUNT).encode(record)
    assert decode_state_count(data) == count


def test_a_dead_letter_is_typed_with_every_field_and_its_dict_is_the_avro_record() -> None:
    event = Event("w", "i", "GO", "e", "2026-01-01T00:00:00Z")
    data = dead_letter("why", "route", SOURCE, b"w:i", b"v", event)
    letter = decode_letter(data)
    assert letter == DeadLetter(
        reason="why",
        stage="route",
        source_topic="omninode.journal",
        source_partition=2,
        source_offset=9,
        key=b"w:i",
        value=b"v",
        value_size=1,
        value_sha256=hashlib.sha256(b"v").hexdigest(),
        value_truncated=False,
        workflow_type="w",
        instance_id="i",
        event_type="GO",
        failed_at=letter.failed_at,
    )
    raw = codec(DEAD_LETTER).decode(data)
    assert decode_dead_letter(data) == raw and list(decode_dead_letter(data)) == list(raw)
    assert encode_letter(letter) == data == codec(DEAD_LETTER).encode(raw)


def test_make_letter_bounds_an_oversized_record_and_reads_the_instance_from_the_key() -> None:
    value = b"x" * 600_000
    letter = make_letter("r" * 5000, "decode", SOURCE, b"w:i", value)
    assert letter.value == value[:4096] and letter.value_truncated
    assert (letter.value_size, letter.value_sha256) == (600_000, hashlib.sha256(value).hexdigest())
    assert letter.reason.endswith("... (5000 characters)")
    assert (letter.workflow_type, letter.instance_id, letter.event_type) == ("w", "i", None)


# --- one decode error -------------------------------------------------------------------


@given(st.binary(max_size=64) | st.none())
def test_every_decoder_raises_only_avro_decode_errors(data: bytes | None) -> None:
    for decode in DECODERS:
        with contextlib.suppress(AvroDecodeError):
            decode(data)


@pytest.mark.parametrize("error", [KeyError("seq"), TypeError("bad"), ValueError("no")])
def test_a_decoder_turns_mapping_errors_into_decode_errors_with_the_same_text(
    error: Exception,
) -> None:
    @decoder
    def broken(data: bytes | None) -> int:
        raise error

    with pytest.raises(AvroDecodeError) as raised:
        broken(b"")
    assert str(raised.value) == str(error) and raised.value.__cause__ is error


def test_a_record_of_another_schema_is_a_decode_error() -> None:
    with pytest.raises(AvroDecodeError, match=r"is not omninode\.StateCount"):
        decode_state_count(encode_instance_view(VIEW))


# --- decode or dead-letter --------------------------------------------------------------


def test_decoded_returns_the_record_or_dead_letters_it_at_stage_decode() -> None:
    outbox = ListOutbox()
    good = encode_state_count(StateCount("w", "a", 1))
    got = asyncio.run(
        decoded(decode_state_count, b"k", good, SOURCE, dead_letters_of(outbox), "state delta")
    )
    assert got == StateCount("w", "a", 1) and outbox.sent == []
    bad = asyncio.run(
        decoded(decode_state_count, b"w:i", b"\0junk", SOURCE, dead_letters_of(outbox), "thing")
    )
    assert bad is None
    [(topic, key, value)] = outbox.sent
    letter = decode_letter(value)
    assert (topic, key, letter.key, letter.value) == (
        topics.DEAD_LETTERS,
        b"w:i",
        b"w:i",
        b"\0junk",
    )
    assert letter.stage == "decode" and letter.reason.startswith("undecodable thing: ")
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == SOURCE


# --- the projector agents and the rebuild write the bytes they wrote before --------------


def test_the_instance_projector_writes_its_table_and_topics_as_before() -> None:
    views: dict[bytes, bytes] = {}
    outbox = ListOutbox()
    projector = InstanceProjector(views, outbox)
    asyncio.run(projector.handle(b"w:i-1", journal(1, ("a",)), SOURCE))
    asyncio.run(projector.handle(b"w:i-1", journal(2, ("b",), "done"), SOURCE))
    asyncio.run(projector.handle(b"w:i-1", journal(2, ("b",), "done"), SOURCE))  # not newer
    first = {**VIEW.to_record(), "configuration": ["a"], "seq": 1}
    first["updated_at"] = "2026-01-01T00:00:01Z"
    after = {**first, "status": "done", "configuration": ["b"], "seq": 2}
    after["updated_at"] = "2026-01-01T00:00:02Z"
    assert views == {b"w:i-1": json.dumps(after).encode()}

    def delta(state: str, count: int) -> tuple[str, bytes, bytes]:
        record = {"workflow_type": "w", "state": state, "count": count}
        return (topics.STATE_DELTAS, f"w:{state}".encode(), codec(STATE_COUNT).encode(record))

    expected = [  # deltas in key order: "(status:...)" sorts before any state name
        (topics.INSTANCE_VIEWS, b"w:i-1", codec(INSTANCE_VIEW).encode(first)),
        delta("(status:active)", 1),
        delta("a", 1),
        (topics.INSTANCE_VIEWS, b"w:i-1", codec(INSTANCE_VIEW).encode(after)),
        delta("(status:active)", -1),
        delta("(status:done)", 1),
        delta("a", -1),
        delta("b", 1),
    ]
    assert outbox.sent == expected


def test_the_projectors_dead_letter_what_they_cannot_decode_with_the_reason() -> None:
    outbox = ListOutbox()
    asyncio.run(InstanceProjector({}, outbox).handle(b"k", b"junk", SOURCE))
    asyncio.run(CountsProjector({}, outbox).handle(b"k", b"junk", SOURCE))
    reasons = [decode_letter(v).reason for v in outbox.on(topics.DEAD_LETTERS)]
    assert [r.split(":")[0] for r in reasons] == [
        "undecodable journal record",
        "undecodable state delta",
    ]
    assert len(outbox.sent) == 2


def test_the_counts_projector_sums_the_deltas_per_key() -> None:
    counts: dict[bytes, bytes] = {}
    outbox = ListOutbox()
    projector = CountsProjector(counts, outbox)
    for change in (1, 1, -1):
        asyncio.run(
            projector.handle(b"w:a", encode_state_count(StateCount("w", "a", change)), SOURCE)
        )
    assert counts == {b"w:a": b"1"}
    totals = [{"workflow_type": "w", "state": "a", "count": n} for n in (1, 2, 1)]
    assert outbox.sent == [
        (topics.STATE_COUNTS, b"w:a", codec(STATE_COUNT).encode(t)) for t in totals
    ]


def test_the_rebuild_compares_and_publishes_typed_records_as_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(bootstrap_servers="127.0.0.1:1")
    stale = {"workflow_type": "w", "state": "gone", "count": 2}
    by_topic = {
        settings.topic(topics.JOURNAL): [
            (b"w:i-1", journal(1, ("a",))),
            (b"w:i-1", journal(2, ("b",))),
        ],
        settings.topic(topics.INSTANCE_VIEWS): [(b"w:i-1", encode_instance_view(VIEW))],
        settings.topic(topics.STATE_COUNTS): [
            (b"w:gone", codec(STATE_COUNT).encode(stale)),
            (b"w:b", codec(STATE_COUNT).encode({**stale, "state": "b", "count": 1})),
            (
                b"w:(status:active)",
                codec(STATE_COUNT).encode({**stale, "state": "(status:active)", "count": 1}),
            ),
        ],
    }
    produced: list[tuple[str, bytes, bytes]] = []

    async def read_topic(settings: Settings, topic: str) -> list[Record]:
        return [Record(topic, 0, n, k, v) for n, (k, v) in enumerate(by_topic.get(topic, []))]

    async def produce(settings: Settings, records: list[tuple[str, bytes, bytes]]) -> None:
        produced.extend(records)

    monkeypatch.setattr(rebuild, "read_topic", read_topic)
    monkeypatch.setattr(rebuild, "produce", produce)
    report = asyncio.run(rebuild.rebuild_projections(settings, publish=True))
    assert report == rebuild.RebuildReport(2, 1, 3, 1, 1)  # counts: b, gone, (status:active)
    view = {**VIEW.to_record(), "configuration": ["b"], "seq": 2}
    view["updated_at"] = "2026-01-01T00:00:02Z"
    count_topic = settings.topic(topics.STATE_COUNTS)
    assert produced == [
        (settings.topic(topics.INSTANCE_VIEWS), b"w:i-1", codec(INSTANCE_VIEW).encode(view)),
        (count_topic, b"w:gone", codec(STATE_COUNT).encode({**stale, "count": 0})),
        (
            count_topic,
            b"w:(status:active)",
            codec(STATE_COUNT).encode({**stale, "state": "(status:active)", "count": 1}),
        ),
        (count_topic, b"w:b", codec(STATE_COUNT).encode({**stale, "state": "b", "count": 1})),
    ]


def test_dlq_reads_letters_as_the_dicts_it_printed_before(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(bootstrap_servers="127.0.0.1:1")
    letter = dead_letter("why", "step", ("omninode.events", 1, 4), b"w:i", b"v")

    async def read_topic(settings: Settings, topic: str) -> list[Record]:
        return [Record(topic, 0, 5, b"w:i", letter), Record(topic, 1, 6, None, b"junk")]

    monkeypatch.setattr(control, "read_topic", read_topic)
    good, bad = asyncio.run(control.read_dead_letters(settings))
    assert good == {**codec(DEAD_LETTER).decode(letter), "id": "0:5"}
    assert bad["stage"] == "unreadable" and bad["id"] == "1:6"
    assert bad["reason"].startswith("not a readable dead letter: ")


# --- one canonical JSON, one timer firing ------------------------------------------------

TIMED = """
    rss: 1
    workflow: w
    version: 1
    initial: waiting
    states:
      waiting:
        after:
          - delay: 15m
            target: late
      late: {}
"""


def test_a_snapshot_dumps_as_sorted_compact_json_as_before() -> None:
    d = Driver(chart(TIMED))
    d.send("$start", {"x": [1.5, "é", {"b": None, "a": True}]})
    assert d.snapshot is not None
    text = json.dumps(d.snapshot.to_dict(), sort_keys=True, separators=(",", ":"))
    assert dumps(d.snapshot) == text


def test_the_driver_and_the_simulator_fire_a_timer_as_the_timer_service_does() -> None:
    d = Driver(chart(TIMED))
    d.send("$start")
    assert d.snapshot is not None
    [timer] = d.snapshot.timers
    d.fire("waiting")
    assert d.results[-1].trace.accepted and d.config == ("late",)
    assert d.snapshot.recent_event_ids[-1] == f"timer:{timer.id}"
    simulator = Simulator(chart(TIMED))
    rows = list(simulator.run(parse_script('{"type": "$start"}\n{"advance": "1h"}\n', "s")))
    assert [r["event"] for r in rows] == ["$start", "$after.waiting.0"]
    assert simulator.snapshot is not None
    assert simulator.snapshot.recent_event_ids[-1].startswith("timer:")


def test_timer_firing_is_the_event_of_the_timer() -> None:
    timer = Timer("w:i:1:t0", "2026-01-01T00:15:00Z", "$after.a.0", "a", 0)
    event = timer_firing("w", "i", timer)
    assert (event.event_id, event.timer_id, event.occurred_at) == (
        "timer:w:i:1:t0",
        "w:i:1:t0",
        "2026-01-01T00:15:00Z",
    )
    assert decode_event(encode_event(event)) == event
