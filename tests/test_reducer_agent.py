"""The reducer agent on dict tables standing in for Faust's: journal and commands, redelivery, confirmation of outputs, early commits, timers."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from app.core.router import ChartRegistry
from app.infra import reducer_agent, topics
from app.infra.instance_store import OUTPUT_LIMIT, decode_stored, decode_timers
from app.infra.timer_service import TimerService
from app.infra.wire import (
    decode_command,
    decode_dead_letter,
    decode_event,
    decode_journal,
    encode_event,
)
from app.spi.envelopes import Event
from tests.helpers import ListOutbox, chart
from tests.table_reducer import Reducer


def run(coroutine):  # type: ignore[no-untyped-def]
    return asyncio.run(coroutine)


TIMED = chart("""
    rss: 1
    workflow: w
    version: 1
    initial: a
    states:
      a:
        after: [{delay: 1m, target: b}]
        on: {GO: {target: b, effects: [{name: ship}]}}
      b: {type: final}
""")


def reducer(committed=None):  # type: ignore[no-untyped-def]
    snapshots: dict[bytes, bytes] = {}
    timers: dict[bytes, bytes] = {}
    outbox = ListOutbox()
    registry = ChartRegistry([TIMED])
    if committed is None:
        return Reducer(registry, snapshots, timers, outbox), snapshots, timers, outbox
    return Reducer(registry, snapshots, timers, outbox, committed), snapshots, timers, outbox


def feed(agent: Reducer, event: Event, offset: int = 7) -> None:
    run(agent.handle(event.key.encode(), encode_event(event), ("omninode.events", 0, offset)))


def test_the_reducer_journals_sends_commands_and_tracks_timers() -> None:
    agent, snapshots, timers, outbox = reducer()
    feed(agent, Event("w", "i", "$start", "e1", "2026-01-01T00:00:00Z"), offset=1)
    (armed,) = json.loads(timers[b"w:i"])
    assert (armed["event"], armed["deadline"]) == ("$after.a.0", "2026-01-01T00:01:00Z")
    feed(agent, Event("w", "i", "GO", "e2", "2026-01-01T00:00:10Z"), offset=2)
    assert decode_stored(snapshots[b"w:i"]).snapshot.status == "done"
    assert [decode_journal(v).seq for v in outbox.on(topics.JOURNAL)] == [1, 2]
    (ship,) = [decode_command(v) for v in outbox.on(topics.DEFAULT_COMMANDS)]
    assert (ship.name, ship.command_id) == ("ship", "w:i:2:1")
    assert b"w:i" not in timers  # the state with the timer was exited


def test_a_redelivery_resends_the_outputs_of_that_event_without_applying_it_again() -> None:
    agent, snapshots, timers, outbox = reducer()
    feed(agent, Event("w", "i", "$start", "e1", "2026-01-01T00:00:00Z"), offset=1)
    feed(agent, Event("w", "i", "GO", "e2", "2026-01-01T00:00:10Z"), offset=2)
    stored, sent = snapshots[b"w:i"], list(outbox.sent)
    timers[b"w:i"] = b"[]"  # a timer-table write lost in the crash
    feed(agent, Event("w", "i", "GO", "e2", "2026-01-01T00:00:10Z"), offset=2)
    assert agent.stats.duplicates == 1 and agent.stats.reemitted == 1
    assert snapshots[b"w:i"] == stored  # written again, unchanged: no new seq
    resent = outbox.sent[len(sent) :]
    assert resent == [m for m in sent if m[0] in (topics.JOURNAL, topics.DEFAULT_COMMANDS)][-2:]
    assert b"w:i" not in timers  # mirrored from the snapshot again


def test_outputs_are_dropped_once_their_source_offset_is_committed() -> None:
    committed: dict[tuple[str, int], int] = {}
    agent, snapshots, _, outbox = reducer(lambda t, p: committed.get((t, p)))
    feed(agent, Event("w", "i", "$start", "e1", "2026-01-01T00:00:00Z"), offset=1)
    assert [o.event_id for o in decode_stored(snapshots[b"w:i"]).outputs] == ["e1"]
    committed[("omninode.events", 0)] = 2  # offset 1 is committed, so e1's outputs were flushed
    feed(agent, Event("w", "i", "GO", "e2", "2026-01-01T00:00:10Z"), offset=5)
    assert [o.event_id for o in decode_stored(snapshots[b"w:i"]).outputs] == ["e2"]
    before = len(outbox.sent)
    feed(agent, Event("w", "i", "$start", "e1", "2026-01-01T00:00:00Z"), offset=1)
    assert len(outbox.sent) == before and agent.stats.reemitted == 0


COUNTING = chart("""
    rss: 1
    workflow: c
    version: 1
    data: {n: 0}
    initial: counting
    states:
      counting:
        on: {PING: {assign: {n: "data.n + 1"}}}
""")


def counting_reducer(committed, commit):  # type: ignore[no-untyped-def]
    snapshots: dict[bytes, bytes] = {}
    agent = Reducer(ChartRegistry([COUNTING]), snapshots, {}, ListOutbox(), committed, commit)
    return agent, snapshots


def ping(agent: Reducer, n: int) -> None:
    event = Event("c", "i", "PING" if n else "$start", f"e{n}", "2026-01-01T00:00:00Z")
    run(agent.handle(b"c:i", encode_event(event), ("omninode.events", 0, n)))


def test_a_hot_instance_asks_for_a_commit_instead_of_dropping_unconfirmed_outputs() -> None:
    committed: dict[tuple[str, int], int] = {}
    handled = [0]

    async def commit() -> None:  # like Faust: flush, then commit every record acked so far
        committed[("omninode.events", 0)] = handled[0]

    agent, snapshots = counting_reducer(lambda t, p: committed.get((t, p)), commit)
    for n in range(OUTPUT_LIMIT + 5):
        ping(agent, n)
        handled[0] = n + 1
    outputs = decode_stored(snapshots[b"c:i"]).outputs
    assert agent.stats.early_commits == 1
    # the commit before step OUTPUT_LIMIT confirmed events 0..OUTPUT_LIMIT-1
    assert [o.offset for o in outputs] == list(range(OUTPUT_LIMIT, OUTPUT_LIMIT + 5))


def test_without_a_commit_no_unconfirmed_output_is_ever_dropped() -> None:
    agent, snapshots = counting_reducer(lambda t, p: None, _no_commit)
    for n in range(OUTPUT_LIMIT + 5):
        ping(agent, n)
    outputs = decode_stored(snapshots[b"c:i"]).outputs
    assert [o.offset for o in outputs] == list(range(OUTPUT_LIMIT + 5))
    assert agent.stats.early_commits == 5  # asked each time, and nothing got confirmed


async def _no_commit() -> None:
    return None


def test_timers_fire_once_when_due_with_the_deadline_as_event_time() -> None:
    outbox = ListOutbox()
    service = TimerService(outbox)
    armed = decode_timers(
        json.dumps(
            [
                {
                    "id": "w:i:1:t1",
                    "deadline": "2026-01-01T00:01:00Z",
                    "event": "$after.a.0",
                    "workflow_type": "w",
                    "instance_id": "i",
                }
            ]
        ).encode()
    )
    assert run(service.fire(armed, datetime(2026, 1, 1, 0, 0, 59, tzinfo=UTC))) == 0
    assert run(service.fire(armed, datetime(2026, 1, 1, 0, 1, 0, tzinfo=UTC))) == 1
    assert run(service.fire(armed, datetime(2026, 1, 1, 0, 2, 0, tzinfo=UTC))) == 0
    (fired,) = [decode_event(v) for v in outbox.on(topics.EVENTS)]
    assert (fired.type, fired.occurred_at, fired.timer_id, fired.event_id) == (
        "$after.a.0",
        "2026-01-01T00:01:00Z",
        "w:i:1:t1",
        "timer:w:i:1:t1",
    )


def test_a_record_on_another_partition_than_its_key_is_dead_lettered_and_starts_nothing() -> None:
    """A producer with another partitioner (kafkajs's legacy one) put a $start where the
    key does not hash: it would create an instance on a partition its later events never
    reach. The reducer refuses it at once, naming both partitions and the fix."""
    outbox = ListOutbox()
    snapshots: dict[bytes, bytes] = {}
    agent = Reducer(ChartRegistry([TIMED]), snapshots, {}, outbox, partitions=4)
    start = Event("w", "i", "$start", "e1", "2026-01-01T00:00:00Z")
    key = start.key.encode()
    right = reducer_agent.partition_of(key, 4)
    wrong = (right + 1) % 4
    run(agent.handle(key, encode_event(start), ("omninode.events", wrong, 5)))
    assert snapshots == {} and outbox.on(topics.JOURNAL) == []
    (letter,) = [decode_dead_letter(v) for v in outbox.on(topics.DEAD_LETTERS)]
    assert letter["stage"] == "route" and letter["source_partition"] == wrong
    assert letter["reason"] == (
        f"record for key 'w:i' is on partition {wrong} of omninode.events, but its key hashes "
        f"to partition {right} of 4: produce with Kafka's default murmur2 partitioner "
        "(kafkajs: Partitioners.DefaultPartitioner; librdkafka: partitioner=murmur2_random)"
    )
    run(agent.handle(key, encode_event(start), ("omninode.events", right, 6)))
    assert b"w:i" in snapshots  # on its own partition, the same record starts the instance
