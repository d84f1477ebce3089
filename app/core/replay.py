"""Replay an instance's journal through the reducer (the event store's read side).

Like Temporal's replayer, replay is a determinism check: each journal record's event is
stepped again, from an empty snapshot, through the charts loaded now, and what the step
gives must be what the journal recorded: the same seq, ignored flag, status, configuration,
chart version, raised events, and the same outputs (commands and events for other
instances, ids and content, compared by the digest each record keeps); and every timer
firing must come at the deadline the replayed steps armed. The first difference is a
:class:`Divergence`; :func:`replay` raises it as :class:`ReplayMismatch`.

A ``$migrate`` record switches the instance to the target version's chart, as the live
reducer did (the registry routes it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from app.core.errors import CoreError
from app.core.interpreter import StepResult, StepTrace
from app.core.model import Chart
from app.core.router import ChartRegistry
from app.core.snapshot import Snapshot
from app.spi.envelopes import MIGRATE, Command, Event, JournalRecord
from app.spi.limits import canonical_json


class ReplayMismatch(CoreError):
    """The charts no longer produce the journal they are asked to replay."""


@dataclass(frozen=True, slots=True)
class Divergence:
    """The first record whose replay differs from what the journal recorded."""

    seq: int
    event_type: str
    what: str  # outcome|seq|ignored|status|configuration|version|raised|outputs|timer
    recorded: str
    replayed: str

    def __str__(self) -> str:
        return (
            f"seq {self.seq} ({self.event_type}): {self.what} differs: journal has "
            f"{self.recorded}, replay gives {self.replayed}"
        )


@dataclass(frozen=True, slots=True)
class ReplayResult:
    snapshot: Snapshot | None
    commands: tuple[tuple[int, tuple[Command, ...]], ...]
    # Per seq, the events for other instances (child starts and cancels, parent answers).
    messages: tuple[tuple[int, tuple[Event, ...]], ...] = ()
    divergence: Divergence | None = None


def outputs_digest(commands: Sequence[Command], messages: Sequence[Event]) -> str:
    """What a journal record keeps of its step's outputs: a digest of every command and
    every event for another instance, ids and content ("" when there are none)."""
    if not commands and not messages:
        return ""
    items: list[object] = [_command_fields(c) for c in commands]
    items += [m.to_dict() for m in messages]
    return hashlib.sha256(canonical_json(items).encode()).hexdigest()[:32]


def _command_fields(command: Command) -> list[object]:
    """Every field of a command, in declaration order (a list, not ``asdict``: this runs
    for every command the workers send)."""
    retry = command.retry
    return [
        command.command_id,
        command.workflow_type,
        command.instance_id,
        command.seq,
        command.kind,
        command.name,
        command.mode,
        command.input,
        [retry.max_attempts, retry.backoff, retry.initial_ms, retry.max_ms],
        command.timeout_ms,
        command.compensate,
        command.compensation_of,
    ]


def replay(charts: Chart | ChartRegistry, records: Iterable[JournalRecord]) -> ReplayResult:
    """Fold ``records`` (one instance, seq order) from an empty snapshot; raise
    :class:`ReplayMismatch` at the first difference from the journal."""
    journal = list(records)
    result = replay_journal(charts, journal)
    if result.divergence is not None:
        where = f"{journal[0].key} " if journal else ""
        raise ReplayMismatch(f"{where}{result.divergence}")
    return result


def replay_journal(charts: Chart | ChartRegistry, records: Iterable[JournalRecord]) -> ReplayResult:
    """Fold ``records`` (one instance, seq order) from an empty snapshot, stopping at the
    first difference from the journal (``divergence``)."""
    registry = charts if isinstance(charts, ChartRegistry) else ChartRegistry([charts])
    snapshot: Snapshot | None = None
    emitted: list[tuple[int, tuple[Command, ...]]] = []
    sent: list[tuple[int, tuple[Event, ...]]] = []
    for record in records:
        divergence = timer_moved(snapshot, record)
        if divergence is not None:
            return ReplayResult(snapshot, tuple(emitted), tuple(sent), divergence)
        result = _replayed_step(registry, snapshot, record)
        divergence = compare(record, result)
        if divergence is not None:
            return ReplayResult(snapshot, tuple(emitted), tuple(sent), divergence)
        snapshot = result.snapshot
        emitted.append((record.seq, result.commands))
        if result.messages:
            sent.append((record.seq, result.messages))
    return ReplayResult(snapshot, tuple(emitted), tuple(sent))


def _replayed_step(
    registry: ChartRegistry, snapshot: Snapshot | None, record: JournalRecord
) -> StepResult:
    """The record's event stepped again. A ``$migrate`` the journal says was ignored moved
    nothing, whatever the reason (often a target version not loaded yet, which may be
    loaded now): it replays as the delivery it was."""
    event = record.event
    if event.type == MIGRATE and record.ignored and snapshot is not None:
        base = snapshot.with_delivery(event.event_id, event.occurred_at)
        return StepResult(base, (), StepTrace("ignored", MIGRATE, base.seq, record.reason))
    return registry.route(snapshot, _as_started(snapshot, record))


def _as_started(snapshot: Snapshot | None, record: JournalRecord) -> Event:
    """The record's event, a first one pinned to the version the journal says the instance
    started on: without a pin it started on the latest version loaded *then*, and a later
    version may be loaded now."""
    event = record.event
    if snapshot is None and event.version is None and record.workflow_version > 0:
        return replace(event, version=record.workflow_version)
    return event


def timer_moved(snapshot: Snapshot | None, record: JournalRecord) -> Divergence | None:
    """A timer firing must come at the deadline the replayed steps armed its timer for: a
    firing's time is its timer's deadline, so another one means an ``after`` delay (or an
    invoke's ``timeout``) changed, though the firing itself, same timer id, still applies."""
    timer_id = record.event.timer_id
    if snapshot is None or timer_id is None or record.event.event_id != f"timer:{timer_id}":
        return None  # only the runtime's own firings (timer_firing) are known to be on time
    armed = next((t for t in snapshot.timers if t.id == timer_id), None)
    if armed is None or armed.deadline == record.event.occurred_at:
        return None
    return _diverged(
        record,
        "timer",
        f"a firing at {record.event.occurred_at}",
        f"the timer armed for {armed.deadline}",
    )


def compare(record: JournalRecord, result: StepResult) -> Divergence | None:
    """What differs between a journal record and its step replayed, first difference only."""
    trace, after = result.trace, result.snapshot
    if not trace.accepted or after is None:
        return _diverged(record, "outcome", "an accepted step", f"{trace.outcome} ({trace.reason})")
    checks: tuple[tuple[str, object, object], ...] = (
        ("seq", record.seq, trace.seq),
        ("ignored", record.ignored, trace.ignored),
        ("status", record.status, after.status),
        ("configuration", list(record.configuration), list(after.configuration)),
        ("version", record.workflow_version, after.version),
        ("raised", list(record.raised), list(trace.raised)),
    )
    for what, recorded, replayed in checks:
        if recorded != replayed:
            return _diverged(record, what, repr(recorded), repr(replayed))
    if record.outputs is not None:  # recorded since RSS v1.1; older records keep none
        digest = outputs_digest(result.commands, result.messages)
        if digest != record.outputs:
            names = [f"{c.kind} {c.name} ({c.command_id})" for c in result.commands]
            names += [f"{m.type} to {m.key}" for m in result.messages]
            return _diverged(
                record,
                "outputs",
                f"digest {record.outputs or 'of no outputs'}",
                f"digest {digest or 'of no outputs'}: {names or 'no outputs'}",
            )
    return None


def _diverged(record: JournalRecord, what: str, recorded: str, replayed: str) -> Divergence:
    return Divergence(record.seq, record.event.type, what, recorded, replayed)
