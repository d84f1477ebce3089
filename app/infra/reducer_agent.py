"""The reducer agent's per-record work, independent of Faust's plumbing (see faust_app.py).

Commit ordering, for one inbound record (an event or a worker's result):

1. Check the record against the limits (key and value size), then decode it (Avro,
   Confluent wire format, a strict JSON payload of bounded depth). An oversized or
   undecodable record, a key that is not the event's ``workflowType:instanceId``, or an
   unknown workflow type is sent to dead letters with the reason; nothing else happens.
2. Read the instance's stored value from the RocksDB table: its snapshot and the outputs
   of its recent steps whose source offsets are not committed yet (absent: a new instance).
3. Run the pure step held to the chart's limits (``bounded_step``, through the router). It
   never raises. A rejected event (unknown instance, payload failing the declared schema)
   goes to dead letters. A duplicate event id read from the same topic, partition and
   offset as the stored output of that event is a redelivery after a crash: write the
   stored value and the timers again and send that event's stored outputs again (they may
   never have reached Kafka), then stop. A duplicate at another offset (a producer sent the
   same event twice) changes and sends nothing.
4. Write the new snapshot *together with* this step's encoded outputs (journal record and
   commands) as one table value: one RocksDB write and one changelog record, on the
   partition of the inbound record. Either both survive a crash or neither does. When the
   instance already holds ``OUTPUT_LIMIT`` unconfirmed outputs, or ``OUTPUT_BYTES`` of them
   with this one, ask for a commit first, which confirms them (every earlier record has
   been acked), so the stored value stays small.
   4'. An output larger than ``OUTPUT_BYTES`` on its own is not stored: it is sent first
   (step 5), then a commit flushes the producer (a barrier: the outputs are acknowledged),
   then the snapshot is written without it. A crash before the snapshot is written applies
   the event again from the previous snapshot, which gives the same outputs.
   A stored value over ``STORED_VALUE_BYTES`` (only possible with limits raised past
   Kafka's request size) raises before anything is written or sent.
5. Send the journal record (key, seq) and then the step's commands to their topics. Sends
   are buffered by the producer and never awaited one by one.
6. Write the instance's armed timers to the timer table (deleted when none are left).
7. Return, which acks the record. Faust commits on its commit interval: it first flushes
   the producer (changelog, journal, commands, timers and dead letters are all acknowledged
   by the broker; ``faust_transport`` makes that flush a true barrier), then commits the
   consumer offsets, then stores the table offsets in RocksDB. Stored outputs whose source
   offset is below the committed offset are dropped at the instance's next write; an
   unconfirmed output is never dropped.

A crash anywhere before step 7 commits redelivers the record. If the value of step 4 was
lost too, the event is applied again from the previous snapshot and gives the same seq,
the same journal record and the same command ids (the reducer is deterministic). If it
survived, step 3 re-sends what step 5 and 6 may have lost. Downstream de-duplicates by
``(instance, seq)`` and by command id. An exception anywhere is caught by the agent loop
(faust_app), which dead-letters the record at stage ``internal`` and goes on.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass

from app.core.interpreter import StepResult
from app.core.replay import journal_record
from app.core.router import ChartRegistry
from app.core.snapshot import Snapshot
from app.infra import settings as topics
from app.infra.instance_store import (
    OUTPUT_BYTES,
    OUTPUT_LIMIT,
    STORED_VALUE_BYTES,
    DecodedCache,
    StepOutput,
    StoredInstance,
    encode_stored,
)
from app.infra.outbox import Outbox, Source, send_dead_letter
from app.infra.wire import (
    AvroDecodeError,
    decode_event,
    encode_command,
    encode_journal,
)
from app.spi.envelopes import Command, Event
from app.spi.limits import DEFAULT_LIMITS, Limits


@dataclass
class ReducerStats:
    applied: int = 0
    duplicates: int = 0
    reemitted: int = 0
    dead_letters: int = 0
    early_commits: int = 0


def _never_committed(topic: str, partition: int) -> int | None:
    return None


async def _cannot_commit() -> None:
    return None


class StoredValueTooLarge(Exception):
    """A stored value over ``STORED_VALUE_BYTES``: the limits were raised past what fits."""


class Reducer:
    def __init__(
        self,
        registry: ChartRegistry,
        snapshots: MutableMapping[bytes, bytes],
        timers: MutableMapping[bytes, bytes],
        outbox: Outbox,
        committed: Callable[[str, int], int | None] = _never_committed,
        commit: Callable[[], Awaitable[object]] = _cannot_commit,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.registry = registry
        self.snapshots = snapshots
        self.timers = timers
        self.outbox = outbox
        self.committed = committed
        self.commit = commit
        self.limits = limits
        self.decoded = DecodedCache()
        self.stats = ReducerStats()

    async def handle(self, key: bytes | None, value: bytes | None, source: Source) -> None:
        # 1. Decode, within the limits.
        problem = self._size_problem(key, value)
        if problem is not None:
            await self._dead_letter(problem, "decode", source, key, value)
            return
        try:
            event = decode_event(value, self.limits.json_depth)
        except (AvroDecodeError, KeyError, TypeError) as exc:
            await self._dead_letter(f"undecodable event: {exc}", "decode", source, key, value)
            return
        if key is None or key.decode("utf-8", "replace") != event.key:
            reason = f"record key {key!r} is not the event's key {event.key!r}"
            await self._dead_letter(reason, "route", source, key, value, event)
            return
        await self._step(key, value, event, source)

    def _size_problem(self, key: bytes | None, value: bytes | None) -> str | None:
        if key is not None and (problem := self.limits.exceeded("key_bytes", len(key))):
            return f"record key bytes: {problem}"
        if value is not None and (problem := self.limits.exceeded("event_bytes", len(value))):
            return f"record bytes: {problem}"
        return None

    async def _step(self, key: bytes, value: bytes | None, event: Event, source: Source) -> None:
        # 2. Read the stored value.
        raw = self.snapshots.get(key)
        stored = self.decoded.decode(key, raw) if raw is not None else None
        before = stored.snapshot if stored is not None else None
        # 3. Step.
        result = self.registry.route(before, event)
        trace = result.trace
        if trace.outcome == "rejected":
            stage = "step" if event.workflow_type in self.registry else "route"
            await self._dead_letter(trace.reason or "rejected", stage, source, key, value, event)
            return
        if trace.outcome == "duplicate" and stored is not None and raw is not None:
            await self._redelivered(key, raw, stored, event, source)
            return
        record = journal_record(event, result)
        if result.snapshot is None or record is None:
            return
        records = [(topics.JOURNAL, encode_journal(record))]
        records += [(_command_topic(c), encode_command(c)) for c in result.commands]
        output = StepOutput(event.event_id, *source, records=tuple(records))
        kept = self._unconfirmed(stored.outputs) if stored is not None else ()
        if output.size > OUTPUT_BYTES:
            # 4'. Too large to keep with the snapshot: make the outputs durable first
            # (the commit flushes the producer, a barrier), then write the snapshot alone.
            self._encode(StoredInstance(result.snapshot, kept), result)  # refuse before sending
            await self._send(key, output)
            await self.commit()
            self._write(key, StoredInstance(result.snapshot, self._unconfirmed(kept)), result)
        else:
            # 4. The snapshot with this step's outputs, one table value.
            kept = await self._make_room(kept, output)
            after = StoredInstance(result.snapshot, (*kept, output))
            encoded = self._encode(after, result)
            self.snapshots[key] = encoded
            self.decoded.remember(key, encoded, after)
            # 5. Send the journal record, then the commands.
            await self._send(key, output)
        # 6. The armed timers.
        self._store_timers(key, before, result.snapshot)
        self.stats.applied += 1
        # 7. Returning acks the record.

    def _encode(self, after: StoredInstance, result: StepResult) -> bytes:
        encoded = encode_stored(after, result.snapshot_json)
        if len(encoded) > STORED_VALUE_BYTES:
            raise StoredValueTooLarge(
                f"stored value of {len(encoded)} bytes is over {STORED_VALUE_BYTES}: "
                "OMNINODE_MAX_SNAPSHOT_BYTES is set higher than Kafka's request limit allows"
            )
        return encoded

    def _write(self, key: bytes, after: StoredInstance, result: StepResult) -> None:
        encoded = self._encode(after, result)
        self.snapshots[key] = encoded
        self.decoded.remember(key, encoded, after)

    async def _send(self, key: bytes, output: StepOutput) -> None:
        for topic, data in output.records:
            await self.outbox.send(topic, key, data)

    async def _redelivered(
        self, key: bytes, raw: bytes, stored: StoredInstance, event: Event, source: Source
    ) -> None:
        """A duplicate event id. The same record read again (a redelivery after a crash):
        write the snapshot, the timers and its outputs again, since any of them may not
        have reached Kafka. A copy of the event at another offset (a producer sent it
        twice) changes nothing and sends nothing."""
        self.stats.duplicates += 1
        output = stored.output_of(event.event_id)
        if output is None or output.source != source:
            return  # a copy, or a record whose outputs were flushed before its commit
        self.snapshots[key] = raw
        self._store_timers(key, None, stored.snapshot)
        self.stats.reemitted += 1
        await self._send(key, output)

    async def _make_room(
        self, kept: tuple[StepOutput, ...], incoming: StepOutput
    ) -> tuple[StepOutput, ...]:
        """Unconfirmed outputs still needed for a redelivery; a commit first when they are
        ``OUTPUT_LIMIT`` or would pass ``OUTPUT_BYTES`` with ``incoming`` (step 4)."""
        size = sum(o.size for o in kept) + incoming.size
        if kept and (len(kept) >= OUTPUT_LIMIT or size > OUTPUT_BYTES):
            self.stats.early_commits += 1
            await self.commit()
            kept = self._unconfirmed(kept)
        return kept

    def _unconfirmed(self, outputs: tuple[StepOutput, ...]) -> tuple[StepOutput, ...]:
        def confirmed(output: StepOutput) -> bool:
            committed = self.committed(output.topic, output.partition)
            return committed is not None and output.offset < committed

        return tuple(o for o in outputs if not confirmed(o))

    def _store_timers(self, key: bytes, before: Snapshot | None, after: Snapshot) -> None:
        """Mirror the snapshot's armed timers into the timer table (``before`` None: always)."""
        if before is not None and before.timers == after.timers:
            return
        if not after.timers:
            if key in self.timers:
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


def _command_topic(command: Command) -> str:
    return topics.EFFECT_COMMANDS if command.kind == "effect" else topics.COMPUTE_COMMANDS
