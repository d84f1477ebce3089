"""The reducer agent's per-record work, independent of Faust's plumbing (see faust_app.py).

Commit ordering, for one inbound record (an event or a worker's result):

1. Decode the bytes (Avro, Confluent wire format). Undecodable bytes, a key that is not the
   event's ``workflowType:instanceId``, or an unknown workflow type are sent to dead letters
   with the reason; nothing else happens for that record.
2. Read the instance's snapshot from the RocksDB table (absent: a new instance).
3. Run the pure ``step`` (through the router). It never raises; a rejected event (unknown
   instance, payload failing the declared schema) goes to dead letters; a duplicate event
   id (a redelivery) changes nothing.
4. Write the new snapshot to the table. Faust writes it to RocksDB and sends it to the
   table's changelog topic, on the partition of the inbound record.
5. Send the journal record (key, seq) and then the step's commands to their topics. Sends
   are buffered by the producer and never awaited one by one.
6. Write the instance's armed timers to the timer table (deleted when none are left).
7. Return, which acks the record. Faust commits on its commit interval: it first flushes
   the producer (changelog, journal, commands and dead letters are all acknowledged by the
   broker), then commits the consumer offsets, then stores the table offsets in RocksDB.

A crash before step 7 commits redelivers the record. Its event id is then in the
snapshot's de-duplication window if step 4 reached the changelog, so it is not applied
twice; command ids are deterministic (instance, seq, position), so a command sent twice
carries the same idempotency key.
"""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from dataclasses import dataclass

from app.core.replay import journal_record
from app.core.router import ChartRegistry
from app.core.snapshot import Snapshot, dumps, loads
from app.infra import settings as topics
from app.infra.outbox import Outbox, Source, send_dead_letter
from app.infra.wire import (
    AvroDecodeError,
    decode_event,
    encode_command,
    encode_journal,
)
from app.spi.envelopes import Event


@dataclass
class ReducerStats:
    applied: int = 0
    duplicates: int = 0
    dead_letters: int = 0


class Reducer:
    def __init__(
        self,
        registry: ChartRegistry,
        snapshots: MutableMapping[bytes, bytes],
        timers: MutableMapping[bytes, bytes],
        outbox: Outbox,
    ) -> None:
        self.registry = registry
        self.snapshots = snapshots
        self.timers = timers
        self.outbox = outbox
        self.stats = ReducerStats()

    async def handle(self, key: bytes | None, value: bytes | None, source: Source) -> None:
        try:
            event = decode_event(value)
        except (AvroDecodeError, KeyError, TypeError) as exc:
            await self._dead_letter(f"undecodable event: {exc}", "decode", source, key, value)
            return
        if key is None or key.decode("utf-8", "replace") != event.key:
            reason = f"record key {key!r} is not the event's key {event.key!r}"
            await self._dead_letter(reason, "route", source, key, value, event)
            return
        await self._step(key, value, event, source)

    async def _step(self, key: bytes, value: bytes | None, event: Event, source: Source) -> None:
        stored = self.snapshots.get(key)
        snapshot = loads(stored) if stored is not None else None
        result = self.registry.route(snapshot, event)
        trace = result.trace
        if trace.outcome == "rejected":
            stage = "step" if event.workflow_type in self.registry else "route"
            await self._dead_letter(trace.reason or "rejected", stage, source, key, value, event)
            return
        if trace.outcome == "duplicate":
            self.stats.duplicates += 1
            return
        record = journal_record(event, result)
        if result.snapshot is None or record is None:
            return
        self.snapshots[key] = dumps(result.snapshot).encode()
        await self.outbox.send(topics.JOURNAL, key, encode_journal(record))
        for command in result.commands:
            topic = topics.EFFECT_COMMANDS if command.kind == "effect" else topics.COMPUTE_COMMANDS
            await self.outbox.send(topic, key, encode_command(command))
        self._store_timers(key, snapshot, result.snapshot)
        self.stats.applied += 1

    def _store_timers(self, key: bytes, before: Snapshot | None, after: Snapshot) -> None:
        if before is not None and before.timers == after.timers:
            return
        if not after.timers:
            if before is not None and before.timers:
                del self.timers[key]
            return
        armed = [
            {
                "id": t.id,
                "deadline": t.deadline,
                "event": t.event,
                "instance_id": after.instance_id,
                "workflow_type": after.workflow,
            }
            for t in after.timers
        ]
        self.timers[key] = json.dumps(armed).encode()

    async def _dead_letter(
        self,
        reason: str,
        stage: str,
        source: Source,
        key: bytes | None,
        value: bytes | None,
        event: Event | None = None,
    ) -> None:
        self.stats.dead_letters += 1
        await send_dead_letter(self.outbox, reason, stage, source, key, value, event)
