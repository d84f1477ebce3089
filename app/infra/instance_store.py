"""The instance store on the Faust app's two tables, and the only code that knows their formats.

:class:`TableInstanceStore` is the :class:`app.core.ports.InstanceStore` of the running
system, over two ``MutableMapping[bytes, bytes]`` tables: Faust tables on RocksDB (with a
changelog topic each) in the workers, plain dicts or a ``rocksdict.Rdict`` in tests. Both
are keyed by the instance key's UTF-8 bytes.

The snapshot table's value is zlib-compressed JSON text (a value written before
compression, JSON text starting with ``{``, still reads):
``{"outputs":[OUTPUT,...],"snapshot":SNAPSHOT}``,
where ``SNAPSHOT`` is the snapshot's canonical JSON (:func:`app.core.snapshot.dumps`) and
each ``OUTPUT`` is ``{"event_id":...,"records":[[TOPIC,BASE64],...],"source":[TOPIC,
PARTITION,OFFSET]}`` with sorted keys and no spaces. One table write holds both, so one
RocksDB write and one changelog record carry the snapshot with its outputs.

The timer table's value is a JSON list with one object per armed timer: ``{"id",
"deadline", "event", "instance_id", "workflow_type"}`` (canonical JSON, as every JSON
value OmniNode writes); an instance without armed timers has no row. :func:`encode_timers` and
:func:`decode_timers` are its one encoder and decoder.

Confirmation is Faust's: an output is confirmed once the committed offset of its source
partition is past its source offset (``committed``); ``commit`` flushes the producer and
commits the offsets of every record acked so far (``faust_app`` provides both).
"""

from __future__ import annotations

import base64
import json
import zlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from app.core.ports import (
    OUTPUT_BYTES,
    OUTPUT_LIMIT,
    STORED_VALUE_BYTES,
    ArmedTimer,
    StoredInstance,
    armed_timers,
)
from app.core.snapshot import Snapshot, Timer, dumps
from app.spi.envelopes import TIMER_PREFIX
from app.spi.errors import StoredValueTooLarge, StoreUnavailable
from app.spi.limits import canonical_json
from app.spi.ports import Source, StepOutput

Table = MutableMapping[bytes, bytes]
CACHE_SIZE = 10_000  # instances whose decoded value is kept
# zlib's fastest level: a three-effect instance's value 995 -> 620 bytes for about 11 µs;
# higher levels saved 2 % more for the same time or more (measured, docs/performance.md).
COMPRESSION_LEVEL = 1
DELIVERED_KEPT = 100_000  # outputs known acknowledged (an output lives until its next step)
_NOTHING: dict[int, str] = {}


# --- the snapshot table's value ---------------------------------------------------------


def output_text(output: StepOutput) -> str:
    """An output's JSON text in the snapshot table (its length is its stored size)."""
    raw = {
        "event_id": output.event_id,
        "source": [output.topic, output.partition, output.offset],
        "records": [[topic, base64.b64encode(value).decode()] for topic, value in output.records],
    }
    if output.routed:  # records keyed by other instances (RSS v1.1 invoke), only when any
        raw["routed"] = [[t, k, base64.b64encode(v).decode()] for t, k, v in output.routed]
    return canonical_json(raw)


def _output(raw: dict[str, Any]) -> StepOutput:
    topic, partition, offset = raw["source"]
    records = tuple((t, base64.b64decode(v)) for t, v in raw["records"])
    routed = tuple((t, k, base64.b64decode(v)) for t, k, v in raw.get("routed", ()))
    return StepOutput(raw["event_id"], topic, int(partition), int(offset), records, routed)


def encode_stored(stored: StoredInstance) -> bytes:
    """The snapshot table's value of ``stored``."""
    return _compressed(value_text(stored, [output_text(o) for o in stored.outputs]))


def value_text(stored: StoredInstance, output_texts: Sequence[str]) -> bytes:
    """The value's JSON text, before compression."""
    snapshot = stored.snapshot_json
    if snapshot is None:
        snapshot = dumps(stored.snapshot)
    return f'{{"outputs":[{",".join(output_texts)}],"snapshot":{snapshot}}}'.encode()


def _compressed(text: bytes) -> bytes:
    return zlib.compress(text, COMPRESSION_LEVEL)


def decode_stored(data: bytes) -> StoredInstance:
    """A value as written now (zlib) or before compression (JSON text, starting ``{``)."""
    if data[:1] != b"{":
        try:
            data = zlib.decompress(data)
        except zlib.error as exc:
            raise ValueError(f"stored value is neither JSON nor zlib: {exc}") from exc
    raw = json.loads(data)
    outputs = tuple(_output(o) for o in raw.get("outputs", ()))
    return StoredInstance(Snapshot.from_dict(raw["snapshot"]), outputs)


# --- the timer table's value ------------------------------------------------------------


def encode_timers(snapshot: Snapshot) -> bytes:
    """The timer table's value of an instance with armed timers."""
    rows = [
        {
            "id": armed.timer.id,
            "deadline": armed.timer.deadline,
            "event": armed.timer.event,
            "instance_id": armed.instance_id,
            "workflow_type": armed.workflow_type,
            **({"dispatch_id": armed.timer.dispatch_id} if armed.timer.dispatch_id else {}),
        }
        for armed in armed_timers(snapshot)
    ]
    return canonical_json(rows).encode()


def decode_timers(data: bytes) -> tuple[ArmedTimer, ...]:
    return tuple(
        ArmedTimer(row["workflow_type"], row["instance_id"], _timer(row))
        for row in json.loads(data)
    )


def _timer(row: dict[str, str]) -> Timer:
    # A row keeps what firing needs; an ``after`` timer's state and index are in its event's
    # name, ``$after.<state>.<index>`` (app.core.builder.timer_event_for). An invoke's
    # timeout fires as ``<name>.timeout`` for its dispatch id.
    event = row["event"]
    if "dispatch_id" in row:
        return Timer(row["id"], row["deadline"], event, "", -1, row["dispatch_id"])
    state, _, index = event.removeprefix(TIMER_PREFIX).rpartition(".")
    return Timer(row["id"], row["deadline"], event, state, int(index) if index.isdigit() else 0)


# --- the adapter ------------------------------------------------------------------------


def _never_committed(topic: str, partition: int) -> int | None:
    return None


async def _cannot_commit() -> None:
    return None


@dataclass(slots=True)
class _Entry:
    """An instance's value as last read or written, decoded, with the JSON texts of its
    outputs by object id (each output is stored again with every later step of its
    instance; ``stored`` keeps the objects, so their ids are not reused meanwhile).

    A value written in a batch is compressed when the batch is written (``__call__``,
    the :class:`DeferringTable` calls it): an instance stepped several times in one batch
    is compressed once. Until then ``raw`` is None and ``text`` holds the JSON text."""

    raw: bytes | None
    stored: StoredInstance
    texts: dict[int, str]
    text: bytes | None = None

    def __call__(self) -> bytes:
        if self.raw is None:
            assert self.text is not None
            self.raw, self.text = _compressed(self.text), None
        return self.raw


@runtime_checkable
class DeferringTable(Protocol):
    """A table that takes a value to be made when it is written (``BatchTable``)."""

    def set_deferred(self, key: bytes, value: Callable[[], bytes]) -> None: ...

    def pending(self, key: bytes) -> object: ...


class TableInstanceStore:
    """The instance store over a snapshot table and a timer table (see the module doc)."""

    def __init__(
        self,
        snapshots: Table,
        timers: Table,
        committed: Callable[[str, int], int | None] = _never_committed,
        commit: Callable[[], Awaitable[object]] = _cannot_commit,
        cache_size: int = CACHE_SIZE,
        cache_is_current: bool = False,
    ) -> None:
        """``cache_is_current``: every write to the snapshot table goes through this store
        until :meth:`forget` is called, so a cached value is the table's and is used
        without reading the table (the reducer's store: Faust's restores run within
        rebalances, which call ``forget``). Otherwise a cached value is used only if
        the table still holds its bytes."""
        self.snapshots = snapshots
        self.timers = timers
        self._committed = committed
        self._commit = commit
        self._cache_size = cache_size
        self._cache_is_current = cache_is_current
        # The armed timers by key, decoded (only while the cache is current).
        self._timer_index: dict[bytes, tuple[ArmedTimer, ...]] | None = None
        # Decoded values of the instances touched last, so a hot instance's value is
        # neither parsed nor encoded again on every event; a hit needs equal bytes in the
        # table, unless the cache is current or the batch holds the entry itself.
        self._cache: OrderedDict[bytes, _Entry] = OrderedDict()
        self._fresh: dict[int, tuple[StepOutput, str]] = {}  # of outputs not saved yet
        self._last: tuple[Sequence[StepOutput], list[str]] | None = None
        self._delivered: OrderedDict[Source, None] = OrderedDict()
        self._deferring = snapshots if isinstance(snapshots, DeferringTable) else None

    def load(self, key: str) -> StoredInstance | None:
        name = key.encode()
        entry = self._cache.get(name)
        if entry is not None and (self._cache_is_current or self._saved_in_batch(name, entry)):
            self._cache.move_to_end(name)
            return entry.stored
        raw = self._get(self.snapshots, name)
        if raw is None:
            return None
        if entry is not None and entry.raw is not None and entry.raw == raw:
            self._cache.move_to_end(name)
            return entry.stored
        stored = decode_stored(raw)
        self._remember(name, _Entry(raw, stored, {}))
        return stored

    def forget(self) -> None:
        """Drop every cached value: the table may have changed under the store (a
        rebalance restores partitions from their changelogs)."""
        self._cache.clear()
        self._last = None
        self._timer_index = None

    def _saved_in_batch(self, name: bytes, entry: _Entry) -> bool:
        deferring = self._deferring
        return deferring is not None and deferring.pending(name) is entry

    def save(self, key: str, stored: StoredInstance) -> None:
        name = key.encode()
        entry = self._encode(name, stored)
        if self._deferring is not None and entry.raw is None:
            try:
                self._deferring.set_deferred(name, entry)
            except Exception as exc:
                raise _unavailable("write to", exc) from exc
        else:
            self._set(self.snapshots, name, entry())
        self._remember(name, entry)
        self._fresh.clear()

    def check(self, key: str, stored: StoredInstance) -> None:
        self._encode(key.encode(), stored)

    def fits(self, key: str, outputs: Sequence[StepOutput]) -> bool:
        if len(outputs) > OUTPUT_LIMIT:
            return False
        entry = self._cache.get(key.encode())
        return sum(map(len, self._texts(entry, outputs))) <= OUTPUT_BYTES

    def unconfirmed(self, outputs: Sequence[StepOutput]) -> tuple[StepOutput, ...]:
        delivered = self._delivered

        def confirmed(output: StepOutput) -> bool:
            if output.source in delivered:
                return True
            committed = self._committed(output.topic, output.partition)
            return committed is not None and output.offset < committed

        return tuple(o for o in outputs if not confirmed(o))

    def delivered(self, output: StepOutput) -> None:
        """The broker acknowledged every record of ``output``: keeping it for a re-send is
        no longer needed (remembered in memory, for the last ``DELIVERED_KEPT`` outputs;
        a restarted worker goes by commits alone)."""
        self._delivered[output.source] = None
        if len(self._delivered) > DELIVERED_KEPT:
            self._delivered.popitem(last=False)

    async def confirm(self) -> None:
        await self._commit()

    def save_timers(self, key: str, snapshot: Snapshot) -> None:
        name = key.encode()
        index = self._timer_index
        if snapshot.timers:
            self._set(self.timers, name, encode_timers(snapshot))
            if index is not None:
                index[name] = armed_timers(snapshot)
            return
        try:
            if name in self.timers:
                del self.timers[name]
        except Exception as exc:
            raise _unavailable("delete from", exc) from exc
        if index is not None:
            index.pop(name, None)

    def armed_timers(self) -> list[ArmedTimer]:
        """From the timer table; a store whose cache is current keeps them decoded (the
        timer service asks every half second) and reads the table again after forget."""
        index = self._timer_index
        if index is None:
            try:
                rows = list(self.timers.items())
            except Exception as exc:
                raise _unavailable("read from", exc) from exc
            index = {name: decode_timers(value) for name, value in rows}
            if self._cache_is_current:
                self._timer_index = index
        return [armed for timers in index.values() for armed in timers]

    def _encode(self, name: bytes, stored: StoredInstance) -> _Entry:
        """The entry of ``stored`` (the loaded value itself keeps its bytes), not yet
        compressed. Raises StoredValueTooLarge over ``STORED_VALUE_BYTES``: the text's
        length bounds the compressed size, so only a text near the cap is compressed
        here to be measured."""
        entry = self._cache.get(name)
        if entry is not None and entry.stored is stored:
            return entry
        texts = self._texts(entry, stored.outputs)
        memo = dict(zip(map(id, stored.outputs), texts, strict=True))
        entry = _Entry(None, stored, memo, value_text(stored, texts))
        assert entry.text is not None
        if len(entry.text) + _zlib_overhead(len(entry.text)) > STORED_VALUE_BYTES:
            size = len(entry())
            if size > STORED_VALUE_BYTES:
                raise StoredValueTooLarge(
                    f"stored value of {size} bytes is over {STORED_VALUE_BYTES}: "
                    "OMNINODE_MAX_SNAPSHOT_BYTES is set higher than Kafka's request limit "
                    "allows"
                )
        return entry

    def _texts(self, entry: _Entry | None, outputs: Sequence[StepOutput]) -> list[str]:
        """The JSON texts of ``outputs``, each made once while its instance is cached (the
        last answer is kept too: ``fits`` and then ``save`` ask about the same outputs)."""
        if self._last is not None and self._last[0] is outputs and isinstance(outputs, tuple):
            return self._last[1]
        known = (entry.texts if entry is not None else _NOTHING).get
        texts = [known(id(output)) or self._fresh_text(output) for output in outputs]
        self._last = (outputs, texts)
        return texts

    def _fresh_text(self, output: StepOutput) -> str:
        fresh = self._fresh.get(id(output))
        if fresh is not None and fresh[0] is output:
            return fresh[1]
        text = output_text(output)
        self._fresh[id(output)] = (output, text)
        return text

    def _remember(self, name: bytes, entry: _Entry) -> None:
        self._cache[name] = entry
        self._cache.move_to_end(name)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    @staticmethod
    def _get(table: Table, name: bytes) -> bytes | None:
        try:
            return table.get(name)
        except Exception as exc:  # the table's storage failed (RocksDB, Faust)
            raise _unavailable("read from", exc) from exc

    @staticmethod
    def _set(table: Table, name: bytes, value: bytes) -> None:
        try:
            table[name] = value
        except Exception as exc:
            raise _unavailable("write to", exc) from exc


def _zlib_overhead(size: int) -> int:
    """The most zlib's compression adds to ``size`` bytes (zlib.h's ``compressBound``)."""
    return (size >> 12) + (size >> 14) + (size >> 25) + 13


def _unavailable(action: str, exc: Exception) -> StoreUnavailable:
    return StoreUnavailable(f"cannot {action} the table: {type(exc).__name__}: {exc}")
