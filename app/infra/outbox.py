"""Where agents publish: the agents' Outbox, dead letters through it, and the reducer's
StepOutbox with the one encoding of a step's outputs (journal record, then commands)."""

from __future__ import annotations

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
    """Where agents publish records: topic name, key, value bytes (sent, not awaited)."""

    async def send(self, topic: str, key: bytes | None, value: bytes) -> None: ...


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
    """The reducer's StepOutbox on an agent Outbox: the Faust app's producer, in workers."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    async def send_output(self, key: str, output: StepOutput) -> None:
        name = key.encode()
        for topic, value in output.records:
            await self.outbox.send(topic, name, value)
        for topic, other, value in output.routed:
            await self.outbox.send(topic, other.encode(), value)

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
