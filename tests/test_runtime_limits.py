"""The reducer's size limits, without a broker: what breaks a limit is refused with the
reason, before anything is written, and every stored value stays far below Kafka's
1 MiB request limit whatever the events are."""

from __future__ import annotations

import asyncio
import hashlib
import random
import string
from dataclasses import replace

import pytest

from app.core.bounds import bounded_step
from app.core.replay import replay
from app.core.router import ChartRegistry
from app.infra import topics
from app.infra.control import replay_dead_letters
from app.infra.instance_store import OUTPUT_BYTES, STORED_VALUE_BYTES, decode_stored
from app.infra.outbox import journal_record
from app.infra.settings import Settings
from app.infra.wire import (
    DEAD_LETTER_PREFIX_BYTES,
    DEAD_LETTER_VALUE_BYTES,
    dead_letter,
    decode_dead_letter,
    decode_journal,
    encode_event,
)
from app.spi.envelopes import Event
from app.spi.errors import StoredValueTooLarge
from app.spi.limits import DEFAULT_LIMITS, Limits
from tests.helpers import ListOutbox, chart
from tests.table_reducer import Reducer

T0 = "2026-01-01T00:00:00Z"
PINGER = chart("""
    rss: 1
    workflow: pinger
    version: 1
    data: {pings: 0, notes: ""}
    initial: idle
    states:
      idle:
        on:
          PING: {assign: {pings: "data.pings + 1"}}
          NOTE: {assign: {notes: "data.notes + event.payload.text"}}
""")
SAGA = chart("""
    rss: 1
    workflow: saga
    version: 1
    data: {blob: ""}
    initial: charging
    states:
      charging:
        entry:
          effects: [{name: charge, compensate: refund}]
        on: {charge.done: grow}
      grow:
        on:
          GROW: {assign: {blob: "data.blob + event.payload.text"}}
""")


def event(type_: str, event_id: str, payload: dict | None = None, wf: str = "pinger") -> Event:
    return Event(wf, "i", type_, event_id, T0, payload or {})


def limited(base, snapshot_bytes: int):  # type: ignore[no-untyped-def]
    return replace(base, limits=Limits(snapshot_bytes=snapshot_bytes))


def test_a_snapshot_growing_past_the_limit_fails_the_instance_with_the_reason() -> None:
    small = limited(PINGER, 2_000)
    snapshot = bounded_step(small, None, event("$start", "s")).snapshot
    results = []
    for n in range(1, 10):
        result = bounded_step(small, snapshot, event("NOTE", f"n{n}", {"text": "x" * 400}))
        results.append(result)
        snapshot = result.snapshot
        if result.trace.outcome == "failed":
            break
    failed = results[-1]
    assert failed.trace.outcome == "failed"
    assert failed.snapshot is not None and failed.snapshot.status == "failed"
    assert "OMNINODE_MAX_SNAPSHOT_BYTES" in (failed.snapshot.reason or "")
    # The last valid data is kept; the delivery is recorded (next seq).
    assert failed.snapshot.data == results[-2].snapshot.data  # type: ignore[union-attr]
    assert failed.snapshot.seq == len(results) + 1
    assert len(failed.snapshot_json or "") <= 2_000 + 200


def test_a_start_whose_data_is_over_the_limit_is_rejected_and_creates_nothing() -> None:
    result = bounded_step(limited(PINGER, 2_000), None, event("$start", "s", {"x": "y" * 5_000}))
    assert result.trace.outcome == "rejected" and result.snapshot is None
    assert "OMNINODE_MAX_SNAPSHOT_BYTES" in (result.trace.reason or "")


def test_failing_on_size_compensates_completed_effects() -> None:
    small = limited(SAGA, 3_000)
    snapshot = bounded_step(small, None, event("$start", "s", wf="saga")).snapshot
    assert snapshot is not None
    dispatch = snapshot.pending[0].dispatch_id
    done = Event("saga", "i", "charge.done", "d", T0, {"ok": True}, dispatch_id=dispatch)
    snapshot = bounded_step(small, snapshot, done).snapshot
    result = bounded_step(small, snapshot, event("GROW", "g", {"text": "z" * 4_000}, "saga"))
    assert result.trace.outcome == "failed"
    assert [c.name for c in result.commands] == ["refund"]


def test_replay_reaches_the_same_size_verdict_as_the_live_step() -> None:
    small = limited(PINGER, 2_000)
    snapshot, records = None, []
    for n, (type_, payload) in enumerate(
        [("$start", {})] + [("NOTE", {"text": "x" * 500})] * 5, start=1
    ):
        result = bounded_step(small, snapshot, event(type_, f"e{n}", payload))
        record = journal_record(event(type_, f"e{n}", payload), result)
        if record is not None:
            records.append(record)
        snapshot = result.snapshot
    assert snapshot is not None and snapshot.status == "failed"
    assert replay(small, records).snapshot == snapshot


def reducer(
    limits: Limits = DEFAULT_LIMITS,
) -> tuple[Reducer, dict[bytes, bytes], ListOutbox, list]:
    snapshots: dict[bytes, bytes] = {}
    outbox = ListOutbox()
    commits: list[int] = []

    async def commit() -> None:
        commits.append(len(outbox.sent))

    agent = Reducer(ChartRegistry([PINGER]), snapshots, {}, outbox, commit=commit, limits=limits)
    return agent, snapshots, outbox, commits


def test_a_hot_instance_with_large_events_keeps_every_stored_value_small() -> None:
    """40 events of 60 KB to one instance within one commit interval (no offset is ever
    committed here): once crashed a worker, since the stored value carried them all."""
    agent, _, outbox, commits = reducer()
    written: list[int] = []

    class Recording(dict):  # type: ignore[type-arg]
        def __setitem__(self, key: bytes, value: bytes) -> None:
            written.append(len(value))
            super().__setitem__(key, value)

    agent.snapshots = Recording()

    async def burst() -> None:
        await agent.handle(b"pinger:i", encode_event(event("$start", "s")), ("in", 0, 0))
        for n in range(1, 41):
            ping = event("PING", f"p{n}", {"blob": "x" * 60_000})
            await agent.handle(b"pinger:i", encode_event(ping), ("in", 0, n))

    asyncio.run(burst())
    assert agent.stats.applied == 41 and agent.stats.dead_letters == 0
    assert max(written) < OUTPUT_BYTES + 4_000  # never a 60 KB output stored, let alone 32
    journal = [decode_journal(v) for v in outbox.on(topics.JOURNAL)]
    assert [r.seq for r in journal] == list(range(1, 42))
    assert len(commits) >= 40  # each oversized output was flushed before its snapshot
    stored = decode_stored(agent.snapshots[b"pinger:i"])
    assert stored.snapshot.data["pings"] == 40


def test_an_output_over_the_budget_is_sent_and_flushed_before_its_snapshot_is_written() -> None:
    agent, _, outbox, commits = reducer()
    order: list[str] = []

    class Tracing(dict):  # type: ignore[type-arg]
        def __setitem__(self, key: bytes, value: bytes) -> None:
            order.append(f"write after {len(outbox.sent)} sent, {len(commits)} commits")
            super().__setitem__(key, value)

    agent.snapshots = Tracing()

    async def scenario() -> None:
        await agent.handle(b"pinger:i", encode_event(event("$start", "s")), ("in", 0, 0))
        big = event("PING", "p", {"blob": "x" * (OUTPUT_BYTES + 1)})
        await agent.handle(b"pinger:i", encode_event(big), ("in", 0, 1))

    asyncio.run(scenario())
    assert order == ["write after 0 sent, 0 commits", "write after 2 sent, 1 commits"]
    stored = decode_stored(agent.snapshots[b"pinger:i"])
    assert [o.event_id for o in stored.outputs] == ["s"]  # the big output is not kept


def test_a_record_over_the_event_limit_is_dead_lettered_before_decoding() -> None:
    agent, snapshots, outbox, _ = reducer(Limits(event_bytes=10_000))
    value = encode_event(event("$start", "s", {"blob": "x" * 20_000}))
    asyncio.run(agent.handle(b"pinger:i", value, ("in", 0, 0)))
    assert snapshots == {}
    [letter] = [decode_dead_letter(v) for v in outbox.on(topics.DEAD_LETTERS)]
    assert letter["stage"] == "decode" and "OMNINODE_MAX_EVENT_BYTES" in letter["reason"]
    assert letter["value"] == value and letter["value_size"] == len(value)
    assert (letter["workflow_type"], letter["instance_id"]) == ("pinger", "i")


def test_a_key_over_the_limit_is_dead_lettered() -> None:
    agent, snapshots, outbox, _ = reducer()
    key = b"pinger:" + b"i" * 1_000
    asyncio.run(agent.handle(key, encode_event(event("$start", "s")), ("in", 0, 0)))
    [letter] = [decode_dead_letter(v) for v in outbox.on(topics.DEAD_LETTERS)]
    assert "OMNINODE_MAX_KEY_BYTES" in letter["reason"] and snapshots == {}


def test_a_dead_letter_of_a_5_mb_record_fits_with_its_size_and_hash() -> None:
    value = b"\x00" * 5_000_000
    letter_bytes = dead_letter("too big", "decode", ("in", 0, 7), b"k" * 5_000, value)
    assert len(letter_bytes) < DEAD_LETTER_PREFIX_BYTES + 2_000
    letter = decode_dead_letter(letter_bytes)
    assert letter["value_truncated"] is True and letter["value_size"] == 5_000_000
    assert letter["value"] == value[:DEAD_LETTER_PREFIX_BYTES]
    assert letter["value_sha256"] == hashlib.sha256(value).hexdigest()
    assert len(letter["key"]) == 1024


def test_a_dead_letter_keeps_a_replayable_record_whole_and_bounds_its_reason() -> None:
    value = b"v" * DEAD_LETTER_VALUE_BYTES
    letter = decode_dead_letter(dead_letter("r" * 100_000, "internal", ("in", 0, 1), b"a:b", value))
    assert letter["value"] == value and letter["value_truncated"] is False
    assert len(letter["reason"]) < 4_100
    assert (letter["workflow_type"], letter["instance_id"]) == ("a", "b")  # from the key


def test_a_copy_of_an_event_at_another_offset_resends_nothing() -> None:
    agent, _, outbox, _ = reducer()
    ping = encode_event(event("PING", "p"))

    async def scenario() -> None:
        await agent.handle(b"pinger:i", encode_event(event("$start", "s")), ("in", 0, 0))
        for offset in (1, 2, 3):  # one event id sent three times by a producer
            await agent.handle(b"pinger:i", ping, ("in", 0, offset))

    asyncio.run(scenario())
    assert agent.stats.applied == 2 and agent.stats.duplicates == 2
    assert agent.stats.reemitted == 0
    assert len(outbox.on(topics.JOURNAL)) == 2


def test_the_same_record_read_again_resends_its_outputs() -> None:
    agent, _, outbox, _ = reducer()
    ping = encode_event(event("PING", "p"))

    async def scenario() -> None:
        await agent.handle(b"pinger:i", encode_event(event("$start", "s")), ("in", 0, 0))
        await agent.handle(b"pinger:i", ping, ("in", 0, 1))
        await agent.handle(b"pinger:i", ping, ("in", 0, 1))  # redelivered after a crash

    asyncio.run(scenario())
    assert agent.stats.reemitted == 1
    journal = [decode_journal(v).seq for v in outbox.on(topics.JOURNAL)]
    assert journal == [1, 2, 2]


def test_a_stored_value_over_the_hard_cap_raises_before_anything_is_written_or_sent() -> None:
    """Limits raised past what Kafka takes: the step is refused as an internal error (the
    agent dead-letters it), never half written."""
    huge = replace(PINGER, limits=Limits(snapshot_bytes=5_000_000))
    snapshots: dict[bytes, bytes] = {}
    outbox = ListOutbox()
    agent = Reducer(ChartRegistry([huge]), snapshots, {}, outbox, limits=huge.limits)

    async def scenario() -> None:
        await agent.handle(b"pinger:i", encode_event(event("$start", "s")), ("in", 0, 0))
        noise = random.Random(7)  # text that does not compress: stored values are zlib
        for offset in range(1, 9):  # 1.6 MB of notes, over 900 KB compressed
            text = "".join(noise.choices(string.ascii_letters + string.digits, k=200_000))
            note = event("NOTE", f"n{offset}", {"text": text})
            await agent.handle(b"pinger:i", encode_event(note), ("in", 0, offset))

    before_sent = None
    try:
        asyncio.run(scenario())
    except StoredValueTooLarge:
        before_sent = len(outbox.sent)
    assert before_sent is not None
    stored = decode_stored(snapshots[b"pinger:i"])
    journal = [decode_journal(v).seq for v in outbox.on(topics.JOURNAL)]
    assert journal == list(range(1, stored.snapshot.seq + 1))  # nothing sent past the snapshot
    assert len(snapshots[b"pinger:i"]) <= STORED_VALUE_BYTES  # the last value written fits


def test_a_result_whose_payload_is_not_plain_json_is_rejected_by_step_not_raised() -> None:
    """The pure step defends itself too: the agents' decoder is not its only guard."""
    snapshot = bounded_step(SAGA, None, event("$start", "s", wf="saga")).snapshot
    assert snapshot is not None
    dispatch = snapshot.pending[0].dispatch_id
    deep: dict = {}
    for _ in range(40):
        deep = {"d": deep}
    for payload in ({"x": float("nan")}, deep, {"s": {1, 2}}):
        done = Event("saga", "i", "charge.done", "d", T0, payload, dispatch_id=dispatch)
        result = bounded_step(SAGA, snapshot, done)
        assert result.trace.outcome == "rejected" and result.snapshot == snapshot
        assert (result.trace.reason or "").startswith("payload: ")


def test_a_truncated_dead_letter_is_refused_by_replay_before_anything_is_sent() -> None:
    letter = decode_dead_letter(dead_letter("big", "decode", ("in", 0, 1), b"a:b", b"x" * 600_000))
    letter["id"] = "0:5"
    # An unreachable cluster: the refusal must come before any connection is tried.
    settings = Settings(bootstrap_servers="127.0.0.1:1")
    with pytest.raises(ValueError, match=r"cannot replay 0:5: .* prefix"):
        asyncio.run(replay_dead_letters(settings, [letter]))
