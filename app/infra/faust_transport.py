"""OmniNode's Faust transports: aiokafka with a producer flush that is a delivery barrier.

Why not Faust's own ``kafka://``: Faust commits source offsets right after
``producer.flush()``, and that flush is not a barrier. Table writes (the snapshot
changelog) go through a buffer queue that a background task drains one record at a
time; ``flush()`` returns when the queue is empty (or when one record takes longer
than 0.1 s), while the record the task has just taken may not have reached aiokafka
yet. Measured: after ``send_soon`` of 10, 200 or 2,000 records and ``flush()``, one
record was still undelivered every time. A commit in that window, followed by a
crash, loses the snapshot of an event whose offset is committed.
``tests/test_delivery_barrier.py`` holds that measurement as a test.

``omninode://`` (production) is Faust's aiokafka transport whose flush waits until
every record put into the buffer is acknowledged by the broker, and raises if one
failed, so an offset commit never gets ahead of a table write.
Both transports' consumers fence off records fetched before the consumer was moved (see
``seek_fence``): Faust would otherwise deliver them after a rebalance's seek and count
the offsets they skip as processed.
``omninode-local://`` (local profile) adds the short consumer fetch wait the embedded
broker needs: it answers a fetch only when ``fetch_max_wait_ms`` expires, even with
records waiting (a record took 550-1300 ms to reach a consumer waiting 1,500 ms, and
2 ms with a 100 ms wait), and Faust fixes the worker consumer's wait at 1,500 ms.
Both are registered as ``faust.transports`` entry points in pyproject.toml.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from typing import Any, cast

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError
from faust.exceptions import ProducerSendError
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as driver
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth, server_list
from faust.transport.producer import ProducerBuffer
from faust.types import TP, FutureMessage, Message
from mode import ServiceT

from app.infra import eager
from app.infra.end_offsets import fetched_end_offsets
from app.infra.seek_fence import SeekFence
from app.infra.settings import LOCAL_FETCH_MAX_WAIT_MS

STALL_CHECK_S = 1.0
YIELD_EVERY_RECORDS = 100  # Faust's: the fetch loop lets other tasks run this often


class DeliveryBarrierBuffer(ProducerBuffer):
    """Faust's producer buffer, with a flush that returns only once every record put
    into it has been acknowledged (or has failed, which it raises)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.outstanding: set[FutureMessage] = set()

    def put(self, fut: FutureMessage) -> None:
        self.outstanding.add(fut)
        fut.add_done_callback(self.outstanding.discard)
        super().put(fut)

    async def flush(self) -> None:
        await super().flush()
        await self.wait_delivered()

    async def wait_delivered(self) -> None:
        while self.outstanding:
            waiting = list(self.outstanding)
            done, _ = await asyncio.wait(waiting, timeout=STALL_CHECK_S)
            failed = [fut for fut in done if not fut.cancelled() and fut.exception()]
            if failed:
                reason = failed[0].exception()
                raise ProducerSendError(f"a buffered record was not delivered: {reason!r}")
            if not done and self.should_stop:
                # Nothing drains the queue any more: committing would skip these records.
                raise ProducerSendError(f"{len(waiting)} buffered records were never sent")


class Producer(driver.Producer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.app.conf.producer_threaded:
            raise ValueError("the omninode transports do not support producer_threaded")
        self.buffer = DeliveryBarrierBuffer(loop=self.loop, beacon=self.beacon)
        self.buffer.app = self.app

    def aiokafka_producer(self) -> Any:
        """The aiokafka producer this one sends through (``send_batches`` appends to its
        batches)."""
        return self._ensure_producer()

    async def commit_transactions(
        self,
        tid_to_offset_map: Mapping[str, Mapping[TP, int]],
        group_id: str,
        start_new_transaction: bool = True,
    ) -> None:
        # Under exactly_once, buffered table writes must join the transaction that
        # commits their source offsets, so they are sent before it commits.
        await self.buffer.flush()
        await super().commit_transactions(
            tid_to_offset_map, group_id, start_new_transaction=start_new_transaction
        )


class FencedConsumer(driver.Consumer):
    """Faust's aiokafka consumer that never delivers a stream record fetched before a
    seek, revoke or assign it had not seen yet (see ``seek_fence``)."""

    _fence: SeekFence[TP] | None = None

    @property
    def fence(self) -> SeekFence[TP]:
        if self._fence is None:
            self._fence = SeekFence()
        return self._fence

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        fence = self.fence
        acks_enabled_for = self.app.topics.acks_enabled_for
        dropped: set[TP] = set()
        async for tp, message in super().getmany(timeout):
            if not acks_enabled_for(message.topic) or fence.admit(tp, message.offset):
                yield tp, message
            elif tp not in dropped:
                dropped.add(tp)
                await self._read_again(tp, message.offset)

    async def _read_again(self, tp: TP, stale_offset: int) -> None:
        offset = self.fence.resume_at(tp)
        self.log.info(
            "Dropped records of %r fetched before a seek (from offset %r); reading again from %r",
            tp,
            stale_offset,
            "where the seek in flight puts it" if offset is None else offset,
        )
        if offset is not None:
            await self._seek_if_assigned({tp: offset})

    async def _seek_settled(self) -> None:
        """Read again the partitions dropped while a seek was in flight: that seek may
        have run in the consumer thread before their fetch, which moved them on."""
        await self._seek_if_assigned(self.fence.settled())

    async def _seek_if_assigned(self, positions: Mapping[TP, int]) -> None:
        # In the consumer thread (Faust's ``seek`` changes aiokafka's state from this one).
        for tp, offset in positions.items():
            with suppress(IllegalStateError):  # revoked meanwhile: its next assignment places it
                await self.seek_wait({tp: offset})

    @asynccontextmanager
    async def _seeking(self) -> AsyncIterator[dict[TP, int]]:
        """Around a seek: a new epoch before and after it, the positions it set, and
        then the partitions dropped meanwhile read again."""
        positions: dict[TP, int] = {}
        self.fence.seek_started()
        try:
            yield positions
        finally:
            self.fence.seek_finished(positions)
        await self._seek_settled()

    async def _drain_messages(self, fetcher: ServiceT) -> None:
        """Faust's fetch loop (``Consumer._drain_messages`` of faust-streaming 0.15.3) with
        one change: each record's callback (the conductor, which puts it on its streams'
        queues) runs at once, and is raced against a stopped flow only if it has to wait
        (``eager.started``), where Faust starts four tasks per record to race it. The rest
        is Faust's: getmany, the read offsets and gaps, ``commit_every``, a pass through
        the event loop every 100 records, and how the loop ends."""
        stopped, fetcher_stopped = self._stopped.is_set, cast(Any, fetcher)._stopped.is_set
        try:
            while not (stopped() or fetcher_stopped()):
                self.diag.set_flag(CONSUMER_FETCHING)
                records = self.getmany(timeout=1.0)
                await self.sleep(0)  # Faust's: getmany in a loop would never yield otherwise
                if not self.should_stop:
                    await self._deliver_all(records)
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if not self.transport.app.should_stop:
                raise
            self.log.info("Broker stopped consumer, shutting down...")
        except asyncio.CancelledError:
            if not self.transport.app.should_stop:
                raise
            self.log.info("Consumer shutting down for user cancel.")
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def _deliver_all(self, records: AsyncIterator[tuple[TP, Message]]) -> None:
        acks_enabled_for = self.app.topics.acks_enabled_for
        read_offsets = self._read_offset
        since_yield = 0
        async for tp, message in records:
            since_yield += 1
            if since_yield > YIELD_EVERY_RECORDS:
                await asyncio.sleep(0)
                since_yield = 0
            offset, read = message.offset, read_offsets[tp]
            if read is not None and offset < read:
                continue  # Faust drops a record behind the partition's read offset
            if read and offset - read > 1 and acks_enabled_for(message.topic):
                await self._add_gap(tp, read + 1, offset)
            commit_every = self._commit_every
            if commit_every is not None and self._n_acked >= commit_every:
                self._n_acked = 0
                await self.commit()
            rest = eager.started(self.callback(message))
            if rest is not None:  # it waits (a full queue, a suspended flow): Faust's race
                await self.wait_first(rest, self.suspend_flow.wait())
            read_offsets[tp] = offset

    async def _getmany(self, active_partitions: set[TP] | None, timeout: float) -> Any:
        self.fence.fetch_issued()
        return await super()._getmany(active_partitions, timeout)

    async def perform_seek(self) -> None:
        """Seek to the committed offsets, and partitions that have none to their first
        offset (aiokafka leaves those where they are, which may be past records the
        fence dropped)."""
        async with self._seeking() as positions:
            await super().perform_seek()
            positions.update(await self._stream_positions())

    async def _stream_positions(self) -> dict[TP, int]:
        acks_enabled_for = self.app.topics.acks_enabled_for
        streams = {tp for tp in self.assignment() if acks_enabled_for(tp.topic)}
        committed = {tp: self._committed_offset.get(tp) for tp in streams}
        positions = {tp: offset for tp, offset in committed.items() if offset}
        uncommitted = streams - positions.keys()
        if uncommitted:
            earliest = await self.earliest_offsets(*uncommitted)
            firsts = {tp: earliest.get(tp) or 0 for tp in uncommitted}
            await self.seek_wait(firsts)
            positions.update(firsts)
        return positions

    async def seek(self, partition: TP, offset: int) -> None:
        async with self._seeking() as positions:
            await super().seek(partition, offset)
            positions[partition] = offset

    async def seek_wait(self, partitions: Mapping[TP, int]) -> None:
        async with self._seeking() as positions:
            await super().seek_wait(partitions)
            positions.update(partitions)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        self.fence.revoked(revoked)
        await super().on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        self.fence.moved()
        await super().on_partitions_assigned(assigned, generation_id)


class Transport(driver.Transport):
    """``omninode://``: Faust's aiokafka transport with the delivery-barrier producer
    and the fenced consumer."""

    Consumer = FencedConsumer
    Producer = Producer


class LocalConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads this when the consumer starts; it has no public setter.
        consumer._fetch_max_wait_ms = LOCAL_FETCH_MAX_WAIT_MS
        return consumer


class LocalConsumer(FencedConsumer):
    """Reads changelog end offsets from fetch responses (the embedded broker's ListOffsets
    is wrong for multi-record batches, and recovery stops at these offsets).

    The probe runs on the app's loop with a consumer of its own, not in the consumer
    thread: a cancelled call into that thread can come back as a CancelledError that
    ends Faust's recovery task for good (mode's ``wait_first`` re-raises it).
    """

    _end_offset_probe: AIOKafkaConsumer | None = None
    _probe_lock: asyncio.Lock | None = None

    def _new_consumer_thread(self) -> LocalConsumerThread:
        return LocalConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def highwaters(self, *partitions: TP) -> Mapping[TP, int]:
        if self.in_transaction:
            return await super().highwaters(*partitions)
        if self._probe_lock is None:
            self._probe_lock = asyncio.Lock()
        async with self._probe_lock:
            probe = await self._probe()
            ends = await fetched_end_offsets(probe, [TopicPartition(*tp) for tp in partitions])
        return {TP(tp.topic, tp.partition): offset for tp, offset in ends.items()}

    async def _probe(self) -> AIOKafkaConsumer:
        if self._end_offset_probe is None:
            transport = cast(driver.Transport, self.transport)
            conf = self.app.conf
            probe = AIOKafkaConsumer(
                bootstrap_servers=server_list(transport.url, transport.default_port),
                client_id=f"{conf.broker_client_id}-end-offsets",
                enable_auto_commit=False,
                fetch_max_wait_ms=LOCAL_FETCH_MAX_WAIT_MS,
                **credentials_to_aiokafka_auth(conf.broker_credentials, conf.ssl_context),
            )
            await probe.start()
            self._end_offset_probe = probe
        return self._end_offset_probe

    async def on_stop(self) -> None:
        await super().on_stop()
        if self._end_offset_probe is not None:
            await self._end_offset_probe.stop()
            self._end_offset_probe = None


class LocalTransport(Transport):
    """``omninode-local://``: ``omninode://`` with the embedded broker's fetch wait and
    end offsets read from fetch responses."""

    Consumer = LocalConsumer
