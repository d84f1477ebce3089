"""The reducer agent's per-record work, independent of Faust's plumbing (see faust_app.py).

It works through two ports: the :class:`~app.core.ports.InstanceStore` (snapshots with
their unconfirmed outputs, armed timers, commits) and the :class:`~app.spi.ports.StepOutbox`
(step outputs and dead letters). In workers they are ``TableInstanceStore`` over the Faust
app's RocksDB tables and ``KafkaStepOutbox`` over its producer. The steps below are marked
``# 1.`` to ``# 7.`` in the code.

Commit ordering, for one inbound record (an event or a worker's result). Records come in
batches (``agent_loop.batch_loop``, ``OMNINODE_REDUCER_BATCH``): steps 1 to 6 run for each
record of a batch in order, but the table writes of steps 4 and 6 go to a write-behind
buffer (``BatchTable``) that the next records of the batch read through; step 7 is per
batch:

1. Check the record against the limits (key and value size) and its partition against
   its key (murmur2, Kafka's default partitioner: the instance's snapshot lives on that
   partition), then decode it (Avro, Confluent wire format, a strict JSON payload of
   bounded depth). An oversized record, one on another partition than its key's, an
   undecodable record, or a key that is not the event's ``workflowType:instanceId`` is sent
   to dead letters with the reason; nothing else happens. (An unknown workflow type is
   dead-lettered at step 3, where a refused child ``$start`` also answers its parent.)
2. Read the instance's stored value (``store.load``; the value an earlier record of the
   batch saved, else the RocksDB snapshot table): its
   snapshot and the outputs of its recent steps whose source offsets may not be committed
   yet (absent: a new instance).
3. Run the pure step held to the chart's limits (``bounded_step``, through the router). It
   never raises. A rejected event (unknown instance, payload failing the declared schema)
   goes to dead letters; a rejected child ``$start`` also sends the parent its ``.failed``
   answer (derived from the event alone, so a redelivery sends the same answer again).
   A duplicate event id read from the same topic, partition and offset as the stored
   output of that event is a redelivery after a crash: write the stored value and the
   timers again and send that event's stored outputs again (they may never have reached
   Kafka), then stop. A duplicate at another offset (a producer sent the
   same event twice) changes and sends nothing.
4. Write the new snapshot *together with* this step's encoded outputs (journal record and
   commands) as one table value: one RocksDB write and one changelog record, on the
   partition of the inbound record. Either both survive a crash or neither does. When the
   instance already holds ``OUTPUT_LIMIT`` unconfirmed outputs, or ``OUTPUT_BYTES`` of them
   with this one (``store.fits``), ask for a commit first (``store.confirm``), which
   confirms them (every earlier record has been acked), so the stored value stays small.
   4'. An output larger than ``OUTPUT_BYTES`` on its own is not stored: it is sent first
   (step 5), then a commit flushes the producer (a barrier: the outputs are acknowledged),
   then the snapshot is written without it. A crash before the snapshot is written applies
   the event again from the previous snapshot, which gives the same outputs.
   A stored value over ``STORED_VALUE_BYTES`` (only possible with limits raised past
   Kafka's request size) raises ``StoredValueTooLarge`` before anything is written or sent
   (``store.check`` before the send of 4').
5. Send the journal record (key, seq), then the step's commands to their topics, then its
   events for other instances, each with its own key: a child's ``$start`` or ``$cancel``
   on the events topic, the answer to a parent on the results topic
   (``outbox.send_output``). Sends are never awaited one by one: during a batch they are
   appended to one producer batch per topic partition (``send_batches``); a commit
   within the batch (step 4, 4') hands what was appended to the producer first.
6. Write the instance's armed timers to the timer table when they changed
   (``store.save_timers``; the row is deleted when none are left).
7. After the batch's last record: write each instance's buffered value and timers once (one
   RocksDB write and one changelog record per instance per batch, on the instance's
   partition; a value is compressed here, so once per instance per batch; the changelog
   records join the batch's sends); hand the batch's sends to the producer (if it refuses
   them, the process exits unacked); then ack every record of the batch. Faust commits
   on its commit interval: it first flushes the producer (changelog, journal, commands,
   timers and dead letters are all acknowledged by the broker; ``faust_transport`` makes
   that flush a true barrier), then commits the consumer offsets. The table offsets in
   RocksDB follow the changelog's acknowledgements. Stored outputs
   whose source offset is below the committed offset, or whose every record the broker has
   acknowledged (``KafkaStepOutbox`` tells ``store.delivered``), are dropped at the
   instance's next write; an unconfirmed output is never dropped.

A crash anywhere before step 7 commits redelivers the record (every record of its batch:
none is acked before the batch's sends and writes; if either fails, the process exits
unacked).
If the value of step 4 was lost too, the event is applied again from the previous snapshot
and gives the same seq, the same journal record and the same command ids (the reducer is
deterministic). If it survived, step 3 re-sends what step 5 and 6 may have lost. Downstream
de-duplicates by ``(instance, seq)`` and by command id. An exception anywhere is caught by
the agent loop (agent_loop), which dead-letters the record at stage ``internal`` and goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from time import perf_counter

from app.core.interpreter import StepResult
from app.core.ports import InstanceStore, StoredInstance
from app.core.router import ChartRegistry
from app.infra import log_context, tracing
from app.infra.decoding import decoded
from app.infra.metrics import Metrics
from app.infra.outbox import routed_records, step_output
from app.infra.send_batches import key_hash
from app.infra.wire import decode_event
from app.spi.envelopes import Event
from app.spi.limits import DEFAULT_LIMITS, Limits
from app.spi.ports import Source, StepOutbox, StepOutput


@dataclass
class ReducerStats:
    applied: int = 0
    duplicates: int = 0
    reemitted: int = 0
    dead_letters: int = 0
    early_commits: int = 0


class Reducer:
    """Steps each inbound record against the instance store and sends what the step
    produced through the step outbox (``faust_app`` wires the Faust-table adapters)."""

    def __init__(
        self,
        registry: ChartRegistry,
        store: InstanceStore,
        outbox: StepOutbox,
        limits: Limits = DEFAULT_LIMITS,
        partitions: int | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.registry = registry
        self.metrics = metrics
        self.store = store
        self.outbox = outbox
        self.limits = limits
        # The inbound topics' partition count (None: records are not checked against it).
        self.partitions = partitions
        self.stats = ReducerStats()

    async def handle(self, key: bytes | None, value: bytes | None, source: Source) -> None:
        # 1. Decode, within the limits.
        problem = self._size_problem(key, value)
        if problem is not None:
            await self._dead_letter(problem, "decode", source, key, value)
            return
        problem = self._partition_problem(key, source)
        if problem is not None:
            await self._dead_letter(problem, "route", source, key, value)
            return
        decode = partial(decode_event, max_depth=self.limits.json_depth)
        event = await decoded(decode, key, value, source, self.outbox.send_dead_letter, "event")
        if event is None:
            self.stats.dead_letters += 1
            return
        if key is None or key != event.key.encode():
            reason = f"record key {key!r} is not the event's key {event.key!r}"
            await self._dead_letter(reason, "route", source, key, value, event)
            return
        await self._step(event, source, key, value)

    def _partition_problem(self, key: bytes | None, source: Source) -> str | None:
        """A record on another partition than its key hashes to would start or step an
        instance beside its real one: refused, naming the fix."""
        if self.partitions is None or key is None:
            return None
        expected = partition_of(key, self.partitions)
        if expected == source[1]:
            return None
        return (
            f"record for key {key.decode(errors='replace')!r} is on partition {source[1]} of "
            f"{source[0]}, but its key hashes to partition {expected} of {self.partitions}: "
            "produce with Kafka's default murmur2 partitioner (kafkajs: "
            "Partitioners.DefaultPartitioner; librdkafka: partitioner=murmur2_random)"
        )

    def _size_problem(self, key: bytes | None, value: bytes | None) -> str | None:
        if key is not None and (problem := self.limits.exceeded("key_bytes", len(key))):
            return f"record key bytes: {problem}"
        if value is not None and (problem := self.limits.exceeded("event_bytes", len(value))):
            return f"record bytes: {problem}"
        return None

    async def _step(self, event: Event, source: Source, key: bytes, value: bytes | None) -> None:
        instance = event.key
        tracing.annotate(**{"omninode.instance": instance, "omninode.event": event.type})
        log_context.correlate(event.correlation_id or event.event_id)
        # 2. Read the stored value.
        stored = self.store.load(instance)
        before = stored.snapshot if stored is not None else None
        # 3. Step.
        started = perf_counter()
        result = self.registry.route(before, event)
        if self.metrics is not None:
            self._observe(event, result, perf_counter() - started)
        if result.trace.outcome == "rejected":
            stage = "step" if event.workflow_type in self.registry else "route"
            reason = result.trace.reason or "rejected"
            await self._dead_letter(reason, stage, source, key, value, event)
            if result.messages:  # a refused child start answers its parent (`.failed`)
                answer = StepOutput(event.event_id, *source, (), routed_records(result.messages))
                await self.outbox.send_output(instance, answer)
            return
        if result.trace.outcome == "duplicate" and stored is not None:
            await self._redelivered(instance, stored, event, source)
            return
        output = step_output(event, result, source, before)
        after = result.snapshot
        if output is None or after is None:
            return
        kept = self.store.unconfirmed(stored.outputs) if stored is not None else ()
        outputs, text = (*kept, output), result.snapshot_json
        room = self.store.fits(instance, outputs)
        if room or self.store.fits(instance, (output,)):
            # 4. The snapshot with this step's outputs, one value (a commit first when the
            # outputs it would hold are more than a value keeps).
            if not room:
                outputs = (*await self._early_commit(kept), output)
            self.store.save(instance, StoredInstance(after, outputs, text))
            # 5. Send the journal record, then the commands.
            await self.outbox.send_output(instance, output)
        else:
            # 4'. Too large to keep with the snapshot: refuse a value over the cap before
            # anything is sent, send (5.), commit (the producer flush is a barrier: the
            # output is durable), then write the snapshot without it.
            self.store.check(instance, StoredInstance(after, kept, text))
            await self.outbox.send_output(instance, output)
            await self.store.confirm()
            self.store.save(instance, StoredInstance(after, self.store.unconfirmed(kept), text))
        # 6. The armed timers.
        if before is None or before.timers != after.timers:
            self.store.save_timers(instance, after)
        self.stats.applied += 1
        # 7. The batch loop writes the buffered tables, hands the batch's sends to the
        # producer, then acks the batch.

    def _observe(self, event: Event, result: StepResult, seconds: float) -> None:
        metrics = self.metrics
        assert metrics is not None
        metrics.step_seconds.observe(seconds)
        metrics.event(event.workflow_type, result.trace.outcome)
        for command in result.commands:
            metrics.commands.labels(command.kind, command.name).inc()

    async def _early_commit(self, kept: tuple[StepOutput, ...]) -> tuple[StepOutput, ...]:
        """The unconfirmed outputs after a commit, which confirms every earlier record."""
        self.stats.early_commits += 1
        await self.store.confirm()
        return self.store.unconfirmed(kept)

    async def _redelivered(
        self, instance: str, stored: StoredInstance, event: Event, source: Source
    ) -> None:
        """A duplicate event id. The same record read again (a redelivery after a crash):
        write the stored value and the timers again and send its outputs again, since any
        of them may not have reached Kafka. A copy of the event at another offset (a
        producer sent it twice) changes nothing and sends nothing."""
        self.stats.duplicates += 1
        output = stored.output_of(event.event_id)
        if output is None or output.source != source:
            return  # a copy, or a record whose outputs were flushed before its commit
        self.store.save(instance, stored)  # 4. again: the loaded value, the same bytes
        self.store.save_timers(instance, stored.snapshot)  # 6. again
        self.stats.reemitted += 1
        await self.outbox.send_output(instance, output)  # 5. again

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
        await self.outbox.send_dead_letter(reason, stage, source, key, value, event)


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner puts ``key`` on (Java's, aiokafka's)."""
    return key_hash(key) % partitions
