"""The reducer works through its two ports alone: on the in-memory adapters it does what it
does on the Faust-table store and the Kafka outbox, record for record."""

from __future__ import annotations

import asyncio

import pytest

from app.core.memory import InMemoryInstanceStore, InMemoryStepOutbox
from app.core.ports import InstanceStore
from app.core.router import ChartRegistry
from app.infra import topics
from app.infra.outbox import KafkaStepOutbox
from app.infra.reducer_agent import Reducer
from app.infra.wire import decode_journal, encode_event
from app.spi.envelopes import Event
from tests.helpers import ListOutbox, chart
from tests.test_instance_store_contract import over_tables

T0 = "2026-01-01T00:00:00Z"
NOTES = chart("""
    rss: 1
    workflow: w
    version: 1
    data: {note: ""}
    initial: a
    states:
      a:
        after: [{delay: 1m, target: b}]
        entry:
          effects: [{name: ship}]
        on:
          NOTE: {assign: {note: "event.payload.text"}, effects: [{name: log}]}
          GO: b
      b: {type: final}
""")


def note(event_id: str, size: int) -> bytes:
    return encode_event(Event("w", "i", "NOTE", event_id, T0, {"text": "x" * size}))


# (value, offset): a start, a note, its redelivery, a copy of it at a new offset, a note
# too large to keep with the snapshot, undecodable bytes, and the step that ends it all.
RECORDS = [
    (encode_event(Event("w", "i", "$start", "s", T0)), 0),
    (note("n1", 10), 1),
    (note("n1", 10), 1),
    (note("n1", 10), 2),
    (note("n2", 80_000), 3),
    (b"\x00garbage", 4),
    (encode_event(Event("w", "i", "GO", "g", T0)), 5),
]


def run_scenario(store: InstanceStore, sent: list[tuple[str, bytes, bytes]]) -> Reducer:
    memory = InMemoryStepOutbox()
    outbox = memory if isinstance(store, InMemoryInstanceStore) else KafkaStepOutbox(ListOutbox())
    reducer = Reducer(ChartRegistry([NOTES]), store, outbox)

    async def feed() -> None:
        for value, offset in RECORDS:
            await reducer.handle(b"w:i", value, ("omninode.events", 0, offset))

    asyncio.run(feed())
    if isinstance(outbox, KafkaStepOutbox):
        assert isinstance(outbox.outbox, ListOutbox)
        sent += [(t, k or b"", v) for t, k, v in outbox.outbox.sent if t != topics.DEAD_LETTERS]
    else:
        sent += [(t, k.encode(), v) for k, o in memory.outputs for t, v in o.records]
        assert [(n.stage, n.source[2]) for n in memory.dead_letters] == [("decode", 4)]
    return reducer


@pytest.mark.parametrize("adapters", ["memory", "tables"])
def test_the_reducer_steps_redelivers_and_dead_letters_through_its_ports(adapters: str) -> None:
    store = InMemoryInstanceStore() if adapters == "memory" else over_tables({}, {})
    sent: list[tuple[str, bytes, bytes]] = []
    reducer = run_scenario(store, sent)
    stats = reducer.stats
    assert (stats.applied, stats.duplicates, stats.reemitted, stats.dead_letters) == (4, 2, 1, 1)
    journal = [decode_journal(v).seq for t, _, v in sent if t == topics.JOURNAL]
    assert journal == [1, 2, 2, 3, 4]  # seq 2 re-sent once, for the redelivered record
    stored = store.load("w:i")
    assert stored is not None and stored.snapshot.status == "done"
    # n2 was never kept; the commit after sending it confirmed the outputs of s and n1.
    assert [o.event_id for o in stored.outputs] == ["g"]
    assert store.armed_timers() == []


def test_both_stores_make_the_reducer_send_the_same_records() -> None:
    in_memory: list[tuple[str, bytes, bytes]] = []
    on_tables: list[tuple[str, bytes, bytes]] = []
    run_scenario(InMemoryInstanceStore(), in_memory)
    run_scenario(over_tables({}, {}), on_tables)
    assert in_memory == on_tables and len(in_memory) == 9
