"""Where agents publish: the agents' Outbox, dead letters through it, and the reducer's
StepOutbox with the one encoding of a step's outputs (journal record, then commands)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from app.core.interpreter import StepResult
from app.core.replay import outputs_digest
from app.core.snapshot import Snapshot
from app.infra import topics
from app.infra.metrics import metrics
from app.infra.wire import dead_letter, encode_command, encode_event, encode_journal
from app.spi.envelopes import Command, Event, JournalRecord
from app.spi.ports import Source, StepOutput

__all__ = ["KafkaStepOutbox", "Outbox", "Source", "journal_record", "send_dead_letter"]


class Outbox(Protocol):
    """Where agents publish records: topic name, key, value bytes (sent, not awaited). It
    may return a future that resolves when the broker has acknowledged the record."""

    async def send(self, topic: str, key: bytes | None, value: bytes) -> object: ...


async def send_dead_letter(
    outbox: Outbox,
    reason: str,
    stage: str,
    source: Source,
    key: bytes | None,
    value: bytes | None,
    event: Event | None = None,
    *,
    workflow_type: str | None = None,
    instance_id: str | None = None,
) -> None:
    """Keep the original bytes, the reason and where they came from on the dead-letter topic.

    The instance is the event's, or ``workflow_type``/``instance_id`` when there is no event.
    """
    letter = dead_letter(
        reason,
        stage,
        source,
        key,
        value,
        event,
        workflow_type=workflow_type,
        instance_id=instance_id,
    )
    await outbox.send(topics.DEAD_LETTERS, key, letter)
    metrics().dead_letters.labels(stage).inc()


def journal_record(
    event: Event, result: StepResult, before: Snapshot | None = None
) -> JournalRecord | None:
    """The journal record of an accepted step; None for duplicates and rejections. It lists
    the events the step raised, and the instance's children when the step changed them."""
    trace = result.trace
    if not trace.accepted or trace.seq is None or result.snapshot is None:
        return None
    snapshot = result.snapshot
    known = before.children if before is not None else ()
    return JournalRecord(
        trace.seq,
        event,
        trace.ignored,
        snapshot.status,
        snapshot.version,
        tuple(snapshot.configuration),
        trace.reason,
        trace.raised,
        snapshot.children if snapshot.children != known else None,
        outputs_digest(result.commands, result.messages),
    )


def step_output(
    event: Event, result: StepResult, source: Source, before: Snapshot | None = None
) -> StepOutput | None:
    """What an accepted step sends, encoded once: its journal record, then its commands,
    each for its topic, then its events for other instances (child starts and cancels on
    the events topic, an answer to the parent on the results topic). None for a step that
    sends nothing (a duplicate, a rejection)."""
    record = journal_record(event, result, before)
    if record is None:
        return None
    records = [(topics.JOURNAL, encode_journal(record))]
    records += [(_command_topic(c), encode_command(c)) for c in result.commands]
    routed = routed_records(result.messages)
    return StepOutput(event.event_id, *source, records=tuple(records), routed=routed)


def routed_records(messages: tuple[Event, ...]) -> tuple[tuple[str, str, bytes], ...]:
    """Events for other instances, each encoded for its topic and keyed by its instance:
    an answer (it has a dispatch id) goes to the results topic, a start or cancel to the
    events topic."""
    return tuple(
        (topics.RESULTS if m.dispatch_id is not None else topics.EVENTS, m.key, encode_event(m))
        for m in messages
    )


def _command_topic(command: Command) -> str:
    return topics.command_topic(command.queue)


class KafkaStepOutbox:
    """The reducer's StepOutbox on an agent Outbox: the Faust app's producer, in workers.

    ``delivered`` (the instance store's) hears of each output once the broker has
    acknowledged every one of its records: such an output need not be kept for a re-send.
    """

    def __init__(
        self, outbox: Outbox, delivered: Callable[[StepOutput], None] | None = None
    ) -> None:
        self.outbox = outbox
        self.delivered = delivered

    async def send_output(self, key: str, output: StepOutput) -> None:
        name = key.encode()
        sends = [await self.outbox.send(topic, name, value) for topic, value in output.records]
        for topic, other, value in output.routed:
            sends.append(await self.outbox.send(topic, other.encode(), value))
        if self.delivered is not None:
            _when_acknowledged(sends, output, self.delivered)

    async def send_dead_letter(
        self,
        reason: str,
        stage: str,
        source: Source,
        key: bytes | None,
        value: bytes | None,
        event: Event | None = None,
    ) -> None:
        await send_dead_letter(self.outbox, reason, stage, source, key, value, event)


def _when_acknowledged(
    sends: list[object], output: StepOutput, delivered: Callable[[StepOutput], None]
) -> None:
    """Call ``delivered(output)`` once every send's future has succeeded (never if one
    failed or a send gave no future: the output then waits for a commit)."""
    futures = [s for s in sends if isinstance(s, asyncio.Future)]
    if len(futures) != len(sends) or not futures:
        return
    pending = {id(f) for f in futures}

    def done(future: asyncio.Future[object]) -> None:
        if future.cancelled() or future.exception() is not None:
            pending.clear()  # never delivered: left to the commit
            return
        if id(future) in pending:
            pending.discard(id(future))
            if not pending:
                delivered(output)

    for future in futures:
        future.add_done_callback(done)
