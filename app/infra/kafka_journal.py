"""The Journal port on a Kafka topic: records keyed ``workflowType:instanceId``, Avro values.

In the running system the reducer agent is the single writer of each instance (it owns the
instance's partition), so its snapshot's seq is the journal's concurrency check. This
adapter serves everything else (the CLI, tools, tests): it checks an append against the
last seq on the topic, and reads de-duplicate by seq, since a redelivered inbound event
may re-emit a record that is already there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable, Sequence
from typing import Any, TypeVar

from aiokafka.errors import KafkaError

from app.core.memory import check_gapless
from app.infra import topics
from app.infra.kafka_client import KafkaUnavailable, produce, read_key, read_topic
from app.infra.settings import Settings
from app.infra.wire import decode_journal, encode_journal
from app.spi.envelopes import JournalRecord
from app.spi.errors import StoreUnavailable

T = TypeVar("T")


class KafkaJournal:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = settings.topic(topics.JOURNAL)

    def append(self, records: Sequence[JournalRecord]) -> None:
        check_gapless(records, self._last_seq)
        batch = [(self.topic, r.key.encode(), encode_journal(r)) for r in records]
        self._run(produce(self.settings, batch))

    def read(self, key: str, after_seq: int = 0) -> list[JournalRecord]:
        return self._run(read_journal(self.settings, key, after_seq))

    def keys(self) -> Iterable[str]:
        found = self._run(read_topic(self.settings, self.topic))
        return sorted({raw.key.decode() for raw in found if raw.key})

    def _last_seq(self, key: str) -> int:
        records = self.read(key)
        return records[-1].seq if records else 0

    @staticmethod
    def _run(coroutine: Coroutine[Any, Any, T]) -> T:
        try:
            return asyncio.run(coroutine)
        except (KafkaUnavailable, KafkaError) as exc:
            raise StoreUnavailable(str(exc)) from exc


async def read_journal(settings: Settings, key: str, after_seq: int = 0) -> list[JournalRecord]:
    """An instance's records in seq order, each seq once (redelivery may re-emit a record)."""
    found = await read_key(settings, settings.topic(topics.JOURNAL), key.encode())
    records = by_instance(decode_journal(raw.value) for raw in found).get(key, [])
    return [record for record in records if record.seq > after_seq]


def by_instance(records: Iterable[JournalRecord]) -> dict[str, list[JournalRecord]]:
    """Each instance's records in seq order, each seq once, by instance key (sorted): a
    redelivered event may re-emit a record, and the first one read wins."""
    by_key: dict[str, dict[int, JournalRecord]] = {}
    for record in records:
        by_key.setdefault(record.key, {}).setdefault(record.seq, record)
    return {key: [seqs[s] for s in sorted(seqs)] for key, seqs in sorted(by_key.items())}
