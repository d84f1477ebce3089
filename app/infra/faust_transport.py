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
``omninode-local://`` (local profile) adds the short consumer fetch wait the embedded
broker needs: it answers a fetch only when ``fetch_max_wait_ms`` expires, even with
records waiting (a record took 550-1300 ms to reach a consumer waiting 1,500 ms, and
2 ms with a 100 ms wait), and Faust fixes the worker consumer's wait at 1,500 ms.
Both are registered as ``faust.transports`` entry points in pyproject.toml.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from faust.exceptions import ProducerSendError
from faust.transport.drivers import aiokafka as driver
from faust.transport.producer import ProducerBuffer
from faust.types import TP, FutureMessage

LOCAL_FETCH_MAX_WAIT_MS = 25
STALL_CHECK_S = 1.0


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


class Transport(driver.Transport):
    """``omninode://``: Faust's aiokafka transport with the delivery-barrier producer."""

    Producer = Producer


class LocalConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads this when the consumer starts; it has no public setter.
        consumer._fetch_max_wait_ms = LOCAL_FETCH_MAX_WAIT_MS
        return consumer


class LocalConsumer(driver.Consumer):
    def _new_consumer_thread(self) -> LocalConsumerThread:
        return LocalConsumerThread(self, loop=self.loop, beacon=self.beacon)


class LocalTransport(Transport):
    """``omninode-local://``: ``omninode://`` with the embedded broker's fetch wait."""

    Consumer = LocalConsumer
