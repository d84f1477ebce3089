"""The reducer's sends of one batch of records, as one producer batch per topic partition.

Sent one by one, each record costs the reducer aiokafka's ``send`` (a coroutine chain,
the partitioner, a future per record that the producer resolves one by one) and a
completion callback of ours (docs/performance.md). While the reducer handles a batch,
:class:`SendBatches` appends each keyed record to an aiokafka ``BatchBuilder`` of its topic
partition, the partition aiokafka's default partitioner gives the key (murmur2, like
Kafka's, or the partition given: a table's changelog record goes on its record's), and
:meth:`SendBatches.submit` hands the builders to the producer (``send_batch``, closed, so
without the producer's linger) once the batch's records are handled and its tables
written, before they are acked. A record's future is its builder's: done when the broker
has acknowledged that producer batch. ``listeners`` hear of each acknowledged batch (the
tables keep their changelog offsets this way).

A record that cannot be appended goes through ``send`` as before: no key, a topic whose
partitions the producer does not know yet, a record over ``BATCHED_RECORD_BYTES``.

What is appended is not in the producer yet, so its flush (before every commit) does not
cover it: whoever commits during a batch submits first (faust_app's ``commit``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

Headers = Sequence[tuple[str, bytes]] | None
KEY_HASHES_KEPT = 100_000  # instance keys whose murmur2 is remembered
# A larger record is sent on its own, through ``send``, which checks it against the
# producer's request size (a builder takes any record while it is empty).
BATCHED_RECORD_BYTES = 16_000


# Per task, so only the reducer's batch loop appends: other agents' sends in the same
# process go to the producer at once, as their acks expect.
_CURRENT: ContextVar[SendBatches | None] = ContextVar("omninode_send_batches", default=None)


class SendFailed(Exception):
    """The producer refused a batch (closed, timed out waiting for room, fenced)."""


@lru_cache(maxsize=KEY_HASHES_KEPT)
def key_hash(key: bytes) -> int:
    """Kafka's default partitioner's hash of ``key`` (partition: this modulo the count).
    aiokafka's murmur2 is pure Python, and an instance's key is hashed for each of its
    records: the hashes of recent keys are kept."""
    hashed: int = murmur2(key) & 0x7FFFFFFF
    return hashed


@dataclass(slots=True)
class _Batch:
    topic: str
    partition: int
    builder: Any  # aiokafka's BatchBuilder
    delivered: asyncio.Future[object] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class SendBatches:
    """Records appended per topic partition, handed to ``producer`` by :meth:`submit`."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self._batches: list[_Batch] = []  # in the order they were opened
        self._open: dict[tuple[str, int], _Batch] = {}
        # Once a submit failed, every later one fails too: the records of the failed
        # batches are lost to this process, so nothing after them may be acked.
        self.failure: SendFailed | None = None
        # Per topic: told (partition, offset of the last record) as each batch is
        # acknowledged (a table keeps its changelog's offset this way).
        self.listeners: dict[str, Callable[[int, int], None]] = {}

    def append(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers = None,
        partition: int | None = None,
    ) -> asyncio.Future[object] | None:
        """The future of the producer batch the record joined; None if it joined none
        (the caller sends it on its own). ``value`` None is a tombstone; ``partition``
        None is the key's."""
        if key is None or len(key) + len(value or b"") > BATCHED_RECORD_BYTES:
            return None
        partitions = self.producer.client.cluster.partitions_for_topic(topic)
        if not partitions or (partition is not None and partition not in partitions):
            return None
        where = (topic, key_hash(key) % len(partitions) if partition is None else partition)
        batch = self._open.get(where)
        for _ in range(2):  # the open batch, then a new one if that one is full
            if batch is not None and _appended(batch.builder, key, value, headers):
                return batch.delivered
            if batch is not None and batch.builder.record_count() == 0:
                return None  # larger than the producer's batches on its own
            batch = _Batch(*where, self.producer.create_batch())
            self._open[where] = batch
            self._batches.append(batch)
        return None

    async def submit(self) -> None:
        """Hand every batch to the producer, in the order they were opened. Raises
        SendFailed (every batch not handed over fails with it too), and again on every
        later call."""
        batches, self._batches, self._open = self._batches, [], {}
        if self.failure is not None:
            for unsent in batches:
                unsent.delivered.set_exception(self.failure)
            raise self.failure
        for n, batch in enumerate(batches):
            if batch.builder.record_count() == 0:
                batch.delivered.set_result(None)
                continue
            batch.builder.close()  # complete: sent at once, no linger
            try:
                sent = await self.producer.send_batch(
                    batch.builder, batch.topic, partition=batch.partition
                )
            except Exception as exc:
                self.failure = SendFailed(
                    f"cannot send to {batch.topic}[{batch.partition}]: {exc!r}"
                )
                for unsent in batches[n:]:
                    unsent.delivered.set_exception(self.failure)
                raise self.failure from exc
            sent.add_done_callback(partial(self._acknowledged, batch))

    def _acknowledged(self, batch: _Batch, done: asyncio.Future[Any]) -> None:
        _settle(batch.delivered, done)
        listener = self.listeners.get(batch.topic)
        if listener is not None and not done.cancelled() and done.exception() is None:
            metadata = done.result()
            if metadata is not None:
                listener(batch.partition, metadata.offset + batch.builder.record_count() - 1)


def current() -> SendBatches | None:
    """The send batches of the task running now (None: its sends go one by one)."""
    return _CURRENT.get()


@contextmanager
def sending_in(batches: SendBatches) -> Iterator[None]:
    """Within, this task's keyed sends join ``batches`` (``current()``)."""
    token = _CURRENT.set(batches)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def _appended(builder: Any, key: bytes, value: bytes | None, headers: Headers) -> bool:
    return builder.append(timestamp=None, key=key, value=value, headers=headers or []) is not None


def _settle(future: asyncio.Future[object], done: asyncio.Future[object]) -> None:
    if future.done():
        return
    if done.cancelled():
        future.cancel()
    elif (exc := done.exception()) is not None:
        future.set_exception(exc)
    else:
        future.set_result(done.result())
