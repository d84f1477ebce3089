"""Write-behind for a Faust table while the reducer handles a batch of records.

Within a batch, writes go to a buffer (the last value of each key wins, a delete is a
``None``) and reads see the buffer first, so the per-record code reads its own writes.
:meth:`BatchTable.flush` then writes each touched key once: one RocksDB write and one
changelog record per instance per batch, however many of its records the batch held.

A value can also be given as a function that makes it (:meth:`BatchTable.set_deferred`):
it is called when the value is first read or written, so an instance stepped several
times in a batch has its value encoded once, for the write.

Faust's table picks the RocksDB partition and the changelog partition of a write (and the
partition read from) from "the current event", a context variable its streams set per
record. In a batch that is not the record being handled, so :func:`handling` sets it to
each record in turn, and :meth:`flush` writes each key with the record that last wrote it
current: every record of an instance lives on its key's partition (the reducer
dead-letters any other), so that is the key's partition. ``faust.streams._current_event``
is Faust's own variable; a test on the broker checks the partitions (test_batch_kafka).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

from faust.streams import _current_event
from faust.types import TP, EventT

from app.infra import send_batches

_DELETED = object()
RAW = ("raw", "raw")  # the serializers of a table of bytes


class handling:
    """Make ``event`` Faust's current event (table reads and writes use its partition). A
    class, not a generator: it wraps every record the reducer handles."""

    __slots__ = ("_event", "_token")

    def __init__(self, event: EventT[Any]) -> None:
        self._event = event

    def __enter__(self) -> None:
        self._token = _current_event.set(weakref.ref(self._event))

    def __exit__(self, *exc: object) -> None:
        _current_event.reset(self._token)


class BatchTable(MutableMapping[bytes, bytes]):
    """A table's view during a batch: buffered writes, reads through the buffer."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self._pending: dict[bytes, tuple[object, EventT[Any] | None]] = {}
        self.flushed_keys = 0  # keys the last flush wrote (one per touched instance)

    def __getitem__(self, key: bytes) -> bytes:
        pending = self._pending.get(key)
        if pending is None:
            value: bytes = self.table[key]
            return value
        if pending[0] is _DELETED:
            raise KeyError(key)
        return self._made(key, pending)

    def get(self, key: bytes, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        pending = self._pending.get(key) if isinstance(key, bytes) else None
        if pending is None:
            return key in self.table
        return pending[0] is not _DELETED

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._pending[key] = (value, _event())

    def __delitem__(self, key: bytes) -> None:
        self._pending[key] = (_DELETED, _event())

    def set_deferred(self, key: bytes, value: Callable[[], bytes]) -> None:
        """Write the value ``value()`` makes, called once, when it is first needed."""
        self._pending[key] = (value, _event())

    def pending(self, key: bytes) -> object:
        """What this batch wrote to ``key`` as given (a value, or the function that makes
        it); None if nothing."""
        pending = self._pending.get(key)
        return None if pending is None or pending[0] is _DELETED else pending[0]

    def _made(self, key: bytes, pending: tuple[object, EventT[Any] | None]) -> bytes:
        value, event = pending
        if callable(value):
            value = value()
            self._pending[key] = (value, event)
        assert isinstance(value, bytes)
        return value

    def __iter__(self) -> Iterator[bytes]:
        return iter(dict(self.items()))

    def __len__(self) -> int:
        return len(dict(self.items()))

    def items(self) -> Any:
        """The table's items with the buffer applied (the timer scan reads these)."""
        merged = dict(self.table.items())
        for key, pending in list(self._pending.items()):
            if pending[0] is _DELETED:
                merged.pop(key, None)
            else:
                merged[key] = self._made(key, pending)
        return merged.items()

    def flush(self) -> None:
        """Write each buffered key once, with the event that last wrote it current."""
        for key, entry in list(self._pending.items()):
            if entry[0] is not _DELETED:
                self._made(key, entry)  # every value made before any is written
        pending, self._pending = self._pending, {}
        sends = send_batches.current()
        changelog = self._changelog(sends) if sends is not None else None
        for key, (value, event) in pending.items():
            with handling(event) if event is not None else _nothing():
                if changelog is not None and event is not None:
                    assert sends is not None
                    if self._write_store(sends, changelog, key, value, event):
                        continue
                if value is _DELETED:
                    if key in self.table:
                        del self.table[key]
                else:
                    self.table[key] = value
        self.flushed_keys = len(pending)

    def _changelog(self, sends: send_batches.SendBatches) -> str | None:
        """The changelog topic of a Faust table of raw bytes (None for a plain mapping or
        other serializers), listened to for the offsets its store keeps."""
        topic = getattr(self.table, "changelog_topic", None)
        if topic is None or (self.table.key_serializer, self.table.value_serializer) != RAW:
            return None
        name: str = topic.get_topic_name()
        if name not in sends.listeners:
            store = self.table.data
            sends.listeners[name] = lambda p, offset: store.set_persisted_offset(
                TP(name, p), offset
            )
        return name

    def _write_store(
        self,
        sends: send_batches.SendBatches,
        changelog: str,
        key: bytes,
        value: object,
        event: EventT[Any],
    ) -> bool:
        """Write the table's store (RocksDB) and append the changelog record to the
        batch's sends, as Faust's table write does with a send of its own per record
        (``Table.on_key_set``; its per-key TTL is for windowed tables, which these are
        not). False: the record joins no batch, so the table writes it as Faust does."""
        store = self.table.data
        if value is _DELETED and key not in store:
            return True
        record = None if value is _DELETED else value
        assert record is None or isinstance(record, bytes)
        if sends.append(changelog, key, record, partition=event.message.partition) is None:
            return False
        # The store's own methods: its mapping interface would serialize raw bytes as raw.
        if record is None:
            store._del(key)
        else:
            store._set(key, record)
        return True


def _event() -> EventT[Any] | None:
    ref = _current_event.get(None)
    return ref() if ref is not None else None


@contextmanager
def _nothing() -> Iterator[None]:
    yield
