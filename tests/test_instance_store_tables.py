"""The Faust-table store beyond the port's contract: the bytes of its two tables (the
snapshot table's changelog and the timer table's are read by other versions of OmniNode
and by the CLI), its cache, and its errors."""

from __future__ import annotations

import dataclasses
import json
import zlib
from pathlib import Path

import pytest
from rocksdict import Options, Rdict

from app.core.ports import STORED_VALUE_BYTES, ArmedTimer, StoredInstance
from app.core.snapshot import Timer, dumps
from app.infra.batch_table import BatchTable
from app.infra.instance_store import (
    COMPRESSION_LEVEL,
    TableInstanceStore,
    decode_stored,
    decode_timers,
    encode_stored,
    encode_timers,
)
from app.spi.errors import StoredValueTooLarge, StoreUnavailable
from app.spi.ports import StepOutput
from tests.test_instance_store_contract import raw_output, started

OUTPUT = StepOutput("e1", "in", 0, 7, (("journal", b"\x00\xff"), ("effects", b"cmd")))
OUTPUT_JSON = (
    '{"event_id":"e1","records":[["journal","AP8="],["effects","Y21k"]],"source":["in",0,7]}'
)


def test_the_snapshot_table_value_is_outputs_and_snapshot_in_one_json_text() -> None:
    snapshot, _ = started()
    value = encode_stored(StoredInstance(snapshot, (OUTPUT, OUTPUT)))
    expected = f'{{"outputs":[{OUTPUT_JSON},{OUTPUT_JSON}],"snapshot":{dumps(snapshot)}}}'
    assert value == zlib.compress(expected.encode(), COMPRESSION_LEVEL)  # zlib of the text
    assert len(value) < len(expected) * 0.8
    assert decode_stored(value) == StoredInstance(snapshot, (OUTPUT, OUTPUT))
    # The snapshot's JSON text, when the step made it, is written as it is.
    made = encode_stored(StoredInstance(snapshot, (), '{"made":"by the step"}'))
    assert zlib.decompress(made).endswith(b'"snapshot":{"made":"by the step"}}')


def test_a_value_written_before_compression_still_reads() -> None:
    snapshot, _ = started()
    text = f'{{"outputs":[{OUTPUT_JSON}],"snapshot":{dumps(snapshot)}}}'.encode()
    assert decode_stored(text) == StoredInstance(snapshot, (OUTPUT,))
    with pytest.raises(ValueError, match="neither JSON nor zlib"):
        decode_stored(b"\x00junk")


def test_a_value_written_before_outputs_were_stored_reads_without_outputs() -> None:
    snapshot, _ = started()
    value = f'{{"snapshot":{dumps(snapshot)}}}'.encode()
    assert decode_stored(value) == StoredInstance(snapshot)


def test_the_timer_row_is_the_json_list_of_the_instances_armed_timers() -> None:
    snapshot, _ = started()
    deadline, first, second = snapshot.timers  # the effect's deadline, armed with it
    row = encode_timers(snapshot)
    expected = (
        f'[{{"deadline":"{deadline.deadline}","dispatch_id":"{deadline.dispatch_id}",'
        f'"event":"ship.timeout","id":"{deadline.id}","instance_id":"i","workflow_type":"w"}},'
        f'{{"deadline":"{first.deadline}","event":"$after.a.0","id":"{first.id}",'
        f'"instance_id":"i","workflow_type":"w"}},{{"deadline":"{second.deadline}",'
        f'"event":"$after.a.1","id":"{second.id}","instance_id":"i","workflow_type":"w"}}]'
    )
    assert row == expected.encode()
    # A dispatch's timeout fires whatever state armed it: its row keeps no state.
    stateless = dataclasses.replace(deadline, state="")
    assert decode_timers(row) == tuple(ArmedTimer("w", "i", t) for t in (stateless, first, second))


def test_a_timer_row_names_the_state_and_index_in_its_event() -> None:
    deadline = "2026-01-01T00:01:00Z"
    row = [{"id": "t", "deadline": deadline, "event": "$after.p.q.3", "instance_id": "i"}]
    row[0]["workflow_type"] = "w"
    (armed,) = decode_timers(json.dumps(row).encode())
    assert armed == ArmedTimer("w", "i", Timer("t", deadline, "$after.p.q.3", "p.q", 3))
    assert armed.deadline_ms == 1_767_225_660_000


def test_the_store_writes_the_bytes_of_the_format() -> None:
    snapshots: dict[bytes, bytes] = {}
    timers: dict[bytes, bytes] = {}
    store = TableInstanceStore(snapshots, timers)
    snapshot, output = started()
    store.save("w:i", StoredInstance(snapshot, (output, OUTPUT)))
    store.save_timers("w:i", snapshot)
    assert snapshots == {b"w:i": encode_stored(StoredInstance(snapshot, (output, OUTPUT)))}
    assert timers == {b"w:i": encode_timers(snapshot)}


def test_a_value_changed_in_the_table_is_read_again_not_taken_from_the_cache() -> None:
    """A rebalance restores a table from its changelog under a running store."""
    snapshots: dict[bytes, bytes] = {}
    store = TableInstanceStore(snapshots, {})
    snapshot, output = started()
    store.save("w:i", StoredInstance(snapshot, (output,)))
    assert store.load("w:i") == StoredInstance(snapshot, (output,))
    snapshots[b"w:i"] = encode_stored(StoredInstance(snapshot, (OUTPUT,)))
    assert store.load("w:i") == StoredInstance(snapshot, (OUTPUT,))
    del snapshots[b"w:i"]
    assert store.load("w:i") is None


def test_outputs_kept_through_many_saves_are_stored_as_they_were() -> None:
    """Each output's JSON text is made once per cached instance and reused: the value
    written after many steps is still exactly the format of its outputs."""
    snapshots: dict[bytes, bytes] = {}
    store = TableInstanceStore(snapshots, {}, cache_size=1)
    snapshot, _ = started()
    outputs: tuple[StepOutput, ...] = ()
    for n in range(40):
        loaded = store.load("w:i")
        outputs = (*(loaded.outputs if loaded else ())[-5:], raw_output(n, 50 + n))
        assert store.fits("w:i", outputs)
        store.save("w:i", StoredInstance(snapshot, outputs))
        if n % 7 == 0:  # another instance takes the one cache place: read back from bytes
            store.save("w:other", StoredInstance(snapshot))
    assert snapshots[b"w:i"] == encode_stored(StoredInstance(snapshot, outputs))


def test_values_in_rocksdb_outlive_the_store_and_the_handle(tmp_path: Path) -> None:
    snapshot, output = started()
    path = str(tmp_path / "snapshots")
    table = Rdict(path, options=Options(raw_mode=True))
    TableInstanceStore(table, {}).save("w:i", StoredInstance(snapshot, (output, OUTPUT)))
    table.close()
    table = Rdict(path, options=Options(raw_mode=True))
    try:
        assert TableInstanceStore(table, {}).load("w:i") == StoredInstance(
            snapshot, (output, OUTPUT)
        )
    finally:
        table.close()


def test_a_table_that_fails_is_store_unavailable(tmp_path: Path) -> None:
    snapshot, output = started()
    snapshots = Rdict(str(tmp_path / "snapshots"), options=Options(raw_mode=True))
    timers = Rdict(str(tmp_path / "timers"), options=Options(raw_mode=True))
    store = TableInstanceStore(snapshots, timers)
    store.save_timers("w:i", snapshot)
    snapshots.close()
    timers.close()
    with pytest.raises(StoreUnavailable, match="cannot read from the table: DbClosedError"):
        store.load("w:i")
    with pytest.raises(StoreUnavailable, match="cannot write to the table"):
        store.save("w:i", StoredInstance(snapshot, (output,)))
    with pytest.raises(StoreUnavailable, match="cannot write to the table"):
        store.save_timers("w:i", snapshot)
    with pytest.raises(StoreUnavailable, match="cannot read from the table"):
        store.armed_timers()


class CountingTable(dict[bytes, bytes]):
    """A dict that counts reads of its values."""

    reads = 0

    def __getitem__(self, key: bytes) -> bytes:
        self.reads += 1
        return super().__getitem__(key)

    def get(self, key: bytes, default: object = None) -> object:  # type: ignore[override]
        try:
            return self[key]
        except KeyError:
            return default


def test_in_a_batch_a_value_is_compressed_once_when_written_and_read_back_without_the_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The reducer steps an instance several times in one batch: each step reads the value
    the last one saved, from the batch, and only the last is compressed, at the flush."""
    table = CountingTable()
    snapshots = BatchTable(table)
    store = TableInstanceStore(snapshots, BatchTable({}))
    compressions: list[int] = []
    real_compress = zlib.compress
    monkeypatch.setattr(
        zlib,
        "compress",
        lambda data, level: compressions.append(len(data)) or real_compress(data, level),
    )
    snapshot, _ = started()
    for n in range(5):
        loaded = store.load("w:i")
        assert (
            loaded is None if n == 0 else loaded == StoredInstance(snapshot, (raw_output(n - 1),))
        )
        store.save("w:i", StoredInstance(snapshot, (raw_output(n),)))
    assert compressions == [] and table == {}
    assert table.reads == 1  # the first load only: the others read the batch
    snapshots.flush()
    assert len(compressions) == 1
    assert table == {b"w:i": encode_stored(StoredInstance(snapshot, (raw_output(4),)))}
    assert store.load("w:i") == StoredInstance(snapshot, (raw_output(4),))
    assert table.reads == 2  # after the batch the table is the truth again


def test_a_value_read_from_the_batch_by_another_reader_is_made_then_and_written_as_made() -> None:
    table: dict[bytes, bytes] = {}
    snapshots = BatchTable(table)
    store = TableInstanceStore(snapshots, {}, cache_size=1)
    snapshot, output = started()
    store.save("w:i", StoredInstance(snapshot, (output,)))
    made = snapshots[b"w:i"]  # the HTTP API or a test reading through the batch
    assert made == encode_stored(StoredInstance(snapshot, (output,)))
    store.save("w:other", StoredInstance(snapshot))  # w:i leaves the cache
    assert store.load("w:i") == StoredInstance(snapshot, (output,))
    snapshots.flush()
    assert table[b"w:i"] is made


def test_the_cap_is_on_the_compressed_value_even_when_its_text_is_longer() -> None:
    snapshots = BatchTable({})
    store = TableInstanceStore(snapshots, {})
    snapshot, _ = started()
    repetitive = StepOutput("e", "in", 0, 1, (("journal", b"a" * STORED_VALUE_BYTES),))
    store.save("w:i", StoredInstance(snapshot, (repetitive,)))  # its text is over the cap
    snapshots.flush()
    assert len(snapshots.table[b"w:i"]) < STORED_VALUE_BYTES // 100
    with pytest.raises(StoredValueTooLarge):
        store.save("w:i", StoredInstance(snapshot, (raw_output(9, STORED_VALUE_BYTES),)))
    assert store.load("w:i") == StoredInstance(snapshot, (repetitive,))


def test_a_store_whose_cache_is_current_reads_the_table_again_only_after_forget() -> None:
    """The reducer's store: every write goes through it, and a rebalance calls forget."""
    table = CountingTable()
    store = TableInstanceStore(table, {}, cache_is_current=True)
    snapshot, output = started()
    store.save("w:i", StoredInstance(snapshot, (output,)))
    for _ in range(3):
        assert store.load("w:i") == StoredInstance(snapshot, (output,))
    assert table.reads == 0
    table[b"w:i"] = encode_stored(StoredInstance(snapshot, (OUTPUT,)))  # a restore
    store.forget()
    assert store.load("w:i") == StoredInstance(snapshot, (OUTPUT,))
    assert table.reads == 1


def test_a_store_whose_cache_is_current_keeps_the_armed_timers_until_forget() -> None:
    """The timer service asks every half second: the rows are decoded once, kept up to
    date by this store's writes, and read again after a rebalance (forget)."""
    timers: dict[bytes, bytes] = {}
    store = TableInstanceStore({}, timers, cache_is_current=True)
    snapshot, _ = started()
    store.save_timers("w:i", snapshot)
    assert store.armed_timers() == list(decode_timers(timers[b"w:i"]))
    other = dataclasses.replace(snapshot, instance_id="j")
    timers[b"w:j"] = encode_timers(other)  # a restore under the store
    assert {t.instance_id for t in store.armed_timers()} == {"i"}
    store.forget()
    assert {t.instance_id for t in store.armed_timers()} == {"i", "j"}
    store.save_timers("w:i", dataclasses.replace(snapshot, timers=()))  # none left: deleted
    assert {t.instance_id for t in store.armed_timers()} == {"j"} and b"w:i" not in timers
    assert all(t.deadline_ms > 0 for t in store.armed_timers())
