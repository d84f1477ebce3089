"""One contract for the InstanceStore port, run against every adapter: in memory, and the
Faust-table store over dicts (what a test hands in) and over RocksDB through
``rocksdict.Rdict`` in raw mode (what Faust's rocksdict driver stores: a byte-level round
trip). Like Faust, the table store's commit confirms every record handled so far."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from rocksdict import Options, Rdict

from app.core.bounds import bounded_step
from app.core.memory import InMemoryInstanceStore
from app.core.ports import (
    OUTPUT_BYTES,
    OUTPUT_LIMIT,
    STORED_VALUE_BYTES,
    ArmedTimer,
    InstanceStore,
    StoredInstance,
    armed_timers,
)
from app.core.snapshot import Snapshot, timer_firing
from app.infra.batch_table import BatchTable
from app.infra.instance_store import TableInstanceStore, decode_stored
from app.infra.outbox import step_output
from app.spi.envelopes import Event
from app.spi.errors import StoredValueTooLarge
from app.spi.ports import StepOutput
from tests.helpers import chart

T0 = "2026-01-01T00:00:00Z"
TIMED = chart("""
    rss: 1
    workflow: w
    version: 1
    data: {note: ""}
    initial: a
    states:
      a:
        after: [{delay: 1m, target: b}, {delay: 1h, target: b}]
        entry:
          effects: [{name: ship}]
        on:
          GO: {target: b}
          NOTE: {assign: {note: "event.payload.text"}}
      b: {type: final}
""")


Tables = dict[bytes, bytes] | Rdict | BatchTable


class FaustLike:
    """Committed offsets as Faust's monitor reports them; a commit commits the offset after
    every record whose outputs were written (here: the records handled so far)."""

    def __init__(self, snapshots: Tables) -> None:
        self.snapshots = snapshots
        self.offsets: dict[tuple[str, int], int] = {}

    def committed(self, topic: str, partition: int) -> int | None:
        return self.offsets.get((topic, partition))

    async def commit(self) -> None:
        for _, value in list(self.snapshots.items()):
            for o in decode_stored(value).outputs:
                tp = (o.topic, o.partition)
                self.offsets[tp] = max(self.offsets.get(tp, 0), o.offset + 1)


def over_tables(
    snapshots: Tables, timers: Tables, cache_is_current: bool = False
) -> TableInstanceStore:
    faust = FaustLike(snapshots)
    return TableInstanceStore(
        snapshots, timers, faust.committed, faust.commit, cache_is_current=cache_is_current
    )


@pytest.fixture(params=["memory", "dicts", "batched", "rocksdb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[InstanceStore]:
    if request.param == "memory":
        yield InMemoryInstanceStore()
    elif request.param == "dicts":
        yield over_tables({}, {})
    elif request.param == "batched":  # as the reducer has it: write-behind views (never
        # flushed here) and a cache trusted to be the table's
        yield over_tables(BatchTable({}), BatchTable({}), cache_is_current=True)
    else:
        snapshots, timers = (
            Rdict(str(tmp_path / name), options=Options(raw_mode=True))
            for name in ("snapshots", "timers")
        )
        yield over_tables(snapshots, timers)
        snapshots.close()
        timers.close()


def started(instance: str = "i", offset: int = 0) -> tuple[Snapshot, StepOutput]:
    """A new instance with two armed timers, a pending effect (and its deadline timer), and
    its step's output."""
    event = Event("w", instance, "$start", f"s-{instance}", T0)
    result = bounded_step(TIMED, None, event)
    output = step_output(event, result, ("omninode.events", 0, offset))
    assert result.snapshot is not None and output is not None
    return result.snapshot, output


def raw_output(offset: int, size: int = 10, event_id: str | None = None) -> StepOutput:
    """An output whose records hold ``size`` pseudo-random bytes in all (they do not
    compress: a table stores its values compressed)."""
    value = random.Random(offset).randbytes(size)
    records = (("journal", value[: size // 2]), ("effects", value[size // 2 :]))
    return StepOutput(event_id or f"e{offset}", "omninode.events", 1, offset, records)


def test_an_instance_never_saved_loads_as_none(store: InstanceStore) -> None:
    assert store.load("w:nobody") is None


def test_a_saved_instance_loads_back_with_its_outputs_in_order(store: InstanceStore) -> None:
    snapshot, first = started()
    second = raw_output(3, 300)
    store.save("w:i", StoredInstance(snapshot, (first, second)))
    loaded = store.load("w:i")
    assert loaded == StoredInstance(snapshot, (first, second))
    assert loaded is not None and loaded.output_of("e3") == second
    assert loaded.output_of("s-i") == first and loaded.output_of("nope") is None


def test_each_save_replaces_the_value_and_instances_are_kept_apart(store: InstanceStore) -> None:
    one, out_one = started("one")
    two, out_two = started("two", offset=1)
    store.save("w:one", StoredInstance(one, (out_one,)))
    store.save("w:two", StoredInstance(two, (out_two,)))
    store.save("w:one", StoredInstance(one))
    assert store.load("w:one") == StoredInstance(one)
    assert store.load("w:two") == StoredInstance(two, (out_two,))


def test_the_loaded_value_saved_again_loads_the_same(store: InstanceStore) -> None:
    snapshot, output = started()
    store.save("w:i", StoredInstance(snapshot, (output,)))
    loaded = store.load("w:i")
    assert loaded is not None
    store.save("w:i", loaded)  # what a redelivery does
    assert store.load("w:i") == StoredInstance(snapshot, (output,))


def test_a_value_over_the_cap_is_refused_and_nothing_is_written(store: InstanceStore) -> None:
    snapshot, output = started()
    store.save("w:i", StoredInstance(snapshot, (output,)))
    huge = StoredInstance(snapshot, (raw_output(9, STORED_VALUE_BYTES),))
    with pytest.raises(StoredValueTooLarge):
        store.check("w:i", huge)
    with pytest.raises(StoredValueTooLarge):
        store.save("w:i", huge)
    assert store.load("w:i") == StoredInstance(snapshot, (output,))
    store.check("w:i", StoredInstance(snapshot, (output,)))  # within the cap: no error


def test_outputs_fit_up_to_the_count_and_the_size_one_value_keeps(store: InstanceStore) -> None:
    small = tuple(raw_output(n) for n in range(OUTPUT_LIMIT + 1))
    assert store.fits("w:i", ())
    assert store.fits("w:i", small[:OUTPUT_LIMIT])
    assert not store.fits("w:i", small)
    assert not store.fits("w:i", (raw_output(99, OUTPUT_BYTES + 1),))
    # Stores measure what they keep (a table: base64 in JSON), so the sizes keep clear of it.
    large = (raw_output(1, OUTPUT_BYTES * 6 // 10), raw_output(2, OUTPUT_BYTES * 6 // 10))
    assert store.fits("w:i", large[:1]) and not store.fits("w:i", large)


def test_an_output_is_unconfirmed_until_a_confirm_after_its_save(store: InstanceStore) -> None:
    snapshot, first = started()
    store.save("w:i", StoredInstance(snapshot, (first,)))
    assert store.unconfirmed((first,)) == (first,)
    asyncio.run(store.confirm())
    assert store.unconfirmed((first,)) == ()
    later = raw_output(5)
    store.save("w:i", StoredInstance(snapshot, (later,)))
    assert store.unconfirmed((first, later)) == (later,)  # order kept, confirmed ones gone


def test_saved_timers_are_the_snapshots_armed_timers(store: InstanceStore) -> None:
    one, _ = started("one")
    two, _ = started("two")
    assert store.armed_timers() == []
    store.save_timers("w:one", one)
    store.save_timers("w:two", two)
    expected = [*armed_timers(one), *armed_timers(two)]
    # Per instance: the two `after` timers and the pending effect's deadline.
    assert len(expected) == 6 and expected[0].timer.state == "a"
    assert [t.timer.event for t in expected].count("ship.timeout") == 2
    assert firings(store.armed_timers()) == firings(expected)
    done = bounded_step(TIMED, one, Event("w", "one", "GO", "g", T0)).snapshot
    assert done is not None and done.timers == ()
    store.save_timers("w:one", done)  # none left: the instance's timers are gone
    store.save_timers("w:never", done)  # an instance that never had any: nothing to do
    assert firings(store.armed_timers()) == firings(armed_timers(two))


def firings(timers: Iterable[ArmedTimer]) -> list[Event]:
    """What the armed timers fire (a dispatch's timeout fires whatever state armed it)."""
    fired = (timer_firing(t.workflow_type, t.instance_id, t.timer) for t in timers)
    return sorted(fired, key=repr)


def test_a_delivered_output_is_confirmed_before_any_commit(store: InstanceStore) -> None:
    snapshot, first = started()
    second = raw_output(5)
    store.save("w:i", StoredInstance(snapshot, (first, second)))
    assert store.unconfirmed((first, second)) == (first, second)
    store.delivered(first)  # the broker acknowledged its records: no re-send needed
    assert store.unconfirmed((first, second)) == (second,)
