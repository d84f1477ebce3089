"""The API's dead letters, read from the dead-letter topic with bounded cost.

- One letter (``GET /api/deadletters/{id}`` and its replay): the id is the record's
  ``partition:offset``, so the read seeks there and takes that one record (one fetch).
- A page of the list: the topic streams by, partition by partition up to the end offsets
  taken when the read started, and only the newest ``limit`` rows are kept (without the
  original bytes, :class:`LetterHeap`); the decoding yields to the worker's agents every
  :data:`YIELD_EVERY` records. The read still costs the whole topic (30 days of retention):
  :class:`SingleFlight` runs one at a time per worker, and list requests asking for the
  same page while it runs share it.

Broker failures are :class:`KafkaUnavailable` (the API answers 503); a read that does not
reach the end offsets within :data:`LETTERS_TIMEOUT_S` is :class:`ReadIncomplete`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Hashable
from typing import Any, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from app.infra import topics
from app.infra.control import UNREADABLE_STAGE, replay_dead_letters
from app.infra.end_offsets import EndOffsetProbeError, fetched_end_offsets
from app.infra.http_commands import LetterHeap
from app.infra.http_inputs import ListQuery
from app.infra.kafka_client import KafkaUnavailable, ReadIncomplete, check_bootstrap_servers
from app.infra.settings import Settings
from app.infra.wire import AvroDecodeError, decode_letter

LETTERS_TIMEOUT_S = 30.0  # the longest one dead-letter read may take, connecting included
POLL_S = 1.0  # one fetch's wait
BATCH = 500  # records handed over per fetch
YIELD_EVERY = 100  # letters decoded between two yields to the event loop
GRACE_S = 5.0  # past the read's own deadline (which names what it did not finish)
T = TypeVar("T")


class Letters(Protocol):
    """What the API needs of the dead-letter topic (the tests hand it a fake)."""

    async def page(self, stage: str | None, query: ListQuery) -> dict[str, Any]: ...

    async def one(self, partition: int, offset: int) -> dict[str, Any] | None: ...

    async def replay(self, letter: dict[str, Any]) -> None: ...


class SingleFlight:
    """One read at a time; a request for a read already running (or waiting its turn)
    shares it instead of starting another."""

    def __init__(self) -> None:
        self._turn = asyncio.Lock()
        self._running: dict[Hashable, asyncio.Future[Any]] = {}

    async def run(self, key: Hashable, read: Callable[[], Awaitable[T]]) -> T:
        shared = self._running.get(key)
        if shared is None:
            shared = asyncio.ensure_future(self._in_turn(key, read))
            shared.add_done_callback(_retrieve)  # nobody left waiting: no "never retrieved"
            self._running[key] = shared
        result: T = await asyncio.shield(shared)
        return result

    async def _in_turn(self, key: Hashable, read: Callable[[], Awaitable[T]]) -> T:
        try:
            async with self._turn:
                return await read()
        finally:
            self._running.pop(key, None)


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def parse_id(text: str) -> tuple[int, int] | None:
    """``partition:offset`` (what ``omninode dlq`` prints), else None."""
    partition, colon, offset = text.partition(":")
    digits = partition.isascii() and partition.isdigit() and offset.isascii() and offset.isdigit()
    if not colon or not digits or len(partition) > 9 or len(offset) > 19:
        return None
    return int(partition), int(offset)


def letter_of(topic: str, message: Any) -> dict[str, Any]:
    """A record of the dead-letter topic as the API shows it, ``id`` its
    ``partition:offset``; a record that is not a readable letter is one of stage
    ``unreadable`` with the reason."""
    partition, offset, key, value = message.partition, message.offset, message.key, message.value
    try:
        letter = decode_letter(value).to_dict()
    except AvroDecodeError as exc:
        letter = {
            "reason": f"not a readable dead letter: {exc}",
            "stage": UNREADABLE_STAGE,
            "source_topic": topic,
            "source_partition": partition,
            "source_offset": offset,
            "key": key,
            "value": value,
        }
    letter["id"] = f"{partition}:{offset}"
    return letter


class KafkaLetters:
    """:class:`Letters` on the deployment's dead-letter topic."""

    def __init__(self, settings: Settings, timeout_s: float = LETTERS_TIMEOUT_S) -> None:
        self.settings = settings
        self.topic = settings.topic(topics.DEAD_LETTERS)
        self.timeout_s = timeout_s

    async def page(self, stage: str | None, query: ListQuery) -> dict[str, Any]:
        heap = LetterHeap(stage, query)
        async with self._bounded(), contextlib.aclosing(self._every_record()) as records:
            n = 0
            async for message in records:
                heap.add(letter_of(self.topic, message))
                n += 1
                if n % YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # let the worker's agents run
        return heap.page()

    async def one(self, partition: int, offset: int) -> dict[str, Any] | None:
        deadline = time.monotonic() + self.timeout_s
        async with self._bounded(), _consumer(self.settings) as consumer:
            if partition not in (consumer.partitions_for_topic(self.topic) or ()):
                return None
            tp = TopicPartition(self.topic, partition)
            ends = await _end_offsets(self.settings, consumer, [tp])
            if offset >= ends.get(tp, 0):
                return None
            consumer.assign([tp])
            consumer.seek(tp, offset)
            while time.monotonic() < deadline:
                batch = await consumer.getmany(tp, timeout_ms=_wait_ms(deadline), max_records=1)
                for message in batch.get(tp, ()):
                    if message.offset != offset:  # expired, or not a record (a marker)
                        return None
                    return letter_of(self.topic, message)
                if await consumer.position(tp) > offset:
                    return None
        raise ReadIncomplete(
            f"{self.settings.bootstrap_servers}: no fetch of {self.topic} partition "
            f"{partition} at offset {offset} answered within {self.timeout_s:.0f}s"
        )

    async def replay(self, letter: dict[str, Any]) -> None:
        async with self._bounded():
            await replay_dead_letters(self.settings, [letter])

    def _bounded(self) -> asyncio.Timeout:
        """Connecting included, nothing here takes longer than the timeout (TimeoutError)."""
        return asyncio.timeout(self.timeout_s + GRACE_S)

    async def _every_record(self) -> AsyncGenerator[Any, None]:
        """Every record of the topic below the end offsets taken when the read started."""
        deadline = time.monotonic() + self.timeout_s
        async with _consumer(self.settings) as consumer:
            partitions = sorted(consumer.partitions_for_topic(self.topic) or ())
            tps = [TopicPartition(self.topic, p) for p in partitions]
            if not tps:
                return
            ends = await _end_offsets(self.settings, consumer, tps)
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            pending = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
            while pending:
                if time.monotonic() >= deadline:
                    raise ReadIncomplete(
                        f"{self.settings.bootstrap_servers}: {self.topic} was not read to its "
                        f"end within {self.timeout_s:.0f}s (partitions "
                        f"{sorted(tp.partition for tp in pending)} unfinished)"
                    )
                batch = await consumer.getmany(
                    *pending, timeout_ms=_wait_ms(deadline), max_records=BATCH
                )
                for tp, messages in batch.items():
                    for message in messages:
                        if message.offset < ends[tp]:
                            yield message
                for tp in list(pending):
                    if await consumer.position(tp) >= ends[tp]:
                        pending.discard(tp)


def _wait_ms(deadline: float) -> int:
    return max(1, int(min(POLL_S, deadline - time.monotonic()) * 1000))


@contextlib.asynccontextmanager
async def _consumer(settings: Settings) -> AsyncIterator[AIOKafkaConsumer]:
    """A started consumer of no group; broker errors become KafkaUnavailable."""
    check_bootstrap_servers(settings.bootstrap_servers)
    consumer = AIOKafkaConsumer(
        **settings.consumer_options(), enable_auto_commit=False, auto_offset_reset="earliest"
    )
    try:
        await consumer.start()
        yield consumer
    except (KafkaError, EndOffsetProbeError) as exc:
        raise KafkaUnavailable(f"{settings.bootstrap_servers}: {exc}") from exc
    finally:
        with contextlib.suppress(asyncio.CancelledError, KafkaError):
            await consumer.stop()


async def _end_offsets(
    settings: Settings, consumer: AIOKafkaConsumer, tps: list[TopicPartition]
) -> dict[TopicPartition, int]:
    if settings.is_local:  # the embedded broker's ListOffsets is wrong for batches
        return await fetched_end_offsets(consumer, tps)
    ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
    return ends
