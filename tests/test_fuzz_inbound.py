"""Fuzzing the inbound path: whatever arrives on the inbound topic, the reducer agent never
raises, and every record ends as exactly one of: a dead letter (with the original bytes),
an applied step (journaled), or a recognised redelivery. Malformed input only ever reaches
dead letters and never changes a snapshot."""

from __future__ import annotations

import asyncio
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.router import ChartRegistry
from app.infra import topics
from app.infra.avro import codec
from app.infra.wire import decode_dead_letter, encode_event
from app.spi.envelopes import Event
from tests.helpers import ListOutbox, chart
from tests.table_reducer import Reducer

CHART = chart("""
    rss: 1
    workflow: w
    version: 1
    events:
      GO: {type: object, required: [n], properties: {n: {type: integer}}}
    initial: a
    states:
      a:
        on: {GO: {target: b, assign: {n: "event.payload.n"}}}
      b:
        on: {GO: a}
""")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
optional_text = st.none() | st.text(max_size=12)


WILD = {
    "event_id": st.sampled_from(["", "s1"]) | st.text(max_size=8),
    "workflow_type": st.sampled_from(["nope", ""]) | st.text(max_size=8),
    "instance_id": st.sampled_from(["j", ""]) | st.text(max_size=8),
    "type": st.sampled_from(["", "$after.zz.9", "x.failed", "GO.done"]) | st.text(max_size=8),
    "payload": json_values.map(json.dumps) | st.text(max_size=20),
    "occurred_at": st.sampled_from(["yesterday", "", "2026-13-45", "2026-01-01"])
    | st.text(max_size=12),
    "dispatch_id": optional_text,
    "timer_id": optional_text,
}


@st.composite
def envelopes(draw: st.DrawFn) -> dict[str, object]:
    """Well-typed Avro Event records: a plausible event with a field or two made wrong."""
    record: dict[str, object] = {
        "event_id": draw(st.sampled_from(["e1", "e2"])),
        "workflow_type": "w",
        "instance_id": "i",
        "type": draw(st.sampled_from(["GO", "$cancel", "$start", "$after.a.0", "x.done"])),
        "seq": draw(st.none() | st.integers(-5, 5)),
        "payload": draw(st.sampled_from(["{}", '{"n": 1}', '{"n": "x"}'])),
        "occurred_at": "2026-01-01T00:00:01Z",
        "dispatch_id": None,
        "timer_id": None,
        "causation_id": draw(optional_text),
        "correlation_id": draw(optional_text),
    }
    for name in draw(st.sets(st.sampled_from(sorted(WILD)), max_size=2)):
        record[name] = draw(WILD[name])
    return record


def fresh() -> tuple[Reducer, dict[bytes, bytes], ListOutbox]:
    snapshots: dict[bytes, bytes] = {}
    outbox = ListOutbox()
    return Reducer(ChartRegistry([CHART]), snapshots, {}, outbox), snapshots, outbox


def started(agent: Reducer) -> None:
    event = Event("w", "i", "$start", "s1", "2026-01-01T00:00:00Z")
    asyncio.run(agent.handle(b"w:i", encode_event(event), ("in", 0, 0)))


@settings(max_examples=300, deadline=None)
@given(key=st.none() | st.binary(max_size=16), value=st.none() | st.binary(max_size=64))
def test_random_bytes_only_ever_reach_dead_letters(key: bytes | None, value: bytes | None) -> None:
    agent, snapshots, outbox = fresh()
    started(agent)
    before, sent = dict(snapshots), len(outbox.sent)
    asyncio.run(agent.handle(key, value, ("in", 0, 1)))
    new = outbox.sent[sent:]
    assert [topic for topic, _, _ in new] == [topics.DEAD_LETTERS]
    letter = decode_dead_letter(new[0][2])
    assert (letter["key"], letter["value"]) == (key, value)
    assert letter["reason"]
    assert snapshots == before


@settings(max_examples=400, deadline=None)
@given(record=envelopes(), key_matches=st.sampled_from([True, True, True, False]))
def test_malformed_envelopes_are_dead_lettered_and_valid_ones_applied(
    record: dict[str, object], key_matches: bool
) -> None:
    agent, snapshots, outbox = fresh()
    started(agent)
    before, sent = dict(snapshots), len(outbox.sent)
    value = codec("omninode.Event").encode(record)
    key = f"{record['workflow_type']}:{record['instance_id']}".encode() if key_matches else b"k"
    asyncio.run(agent.handle(key, value, ("in", 0, 1)))  # invariant: never raises
    sent_to = [topic for topic, _, _ in outbox.sent[sent:]]
    stats = agent.stats
    assert stats.applied + stats.dead_letters + stats.duplicates == 2  # exactly one outcome
    if stats.dead_letters:
        assert sent_to == [topics.DEAD_LETTERS]
        assert snapshots == before  # a dead-lettered record changes no snapshot
        assert decode_dead_letter(outbox.sent[-1][2])["value"] == value
    elif stats.duplicates:
        assert record["event_id"] == "s1"  # a copy of $start at another offset: nothing moves
        assert snapshots == before and sent_to == []
    else:
        assert sent_to[0] == topics.JOURNAL  # applied: journaled with the next seq
