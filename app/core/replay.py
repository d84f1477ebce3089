"""Replay an instance's journal through the reducer (the event store's read side).

Like Temporal's replayer, replay checks that the reducer still agrees with the journal:
each record must get the same seq, the same ignored flag and raise the same internal
events, else :class:`ReplayMismatch`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from app.core.bounds import bounded_step
from app.core.errors import CoreError
from app.core.interpreter import StepResult
from app.core.model import Chart
from app.core.snapshot import Snapshot
from app.spi.envelopes import Command, Event, JournalRecord


class ReplayMismatch(CoreError):
    """The chart no longer produces the journal it is asked to replay."""


@dataclass(frozen=True, slots=True)
class ReplayResult:
    snapshot: Snapshot | None
    commands: tuple[tuple[int, tuple[Command, ...]], ...]
    # Per seq, the events for other instances (child starts and cancels, parent answers).
    messages: tuple[tuple[int, tuple[Event, ...]], ...] = ()


def replay(chart: Chart, records: Iterable[JournalRecord]) -> ReplayResult:
    """Fold ``records`` (one instance, seq order) from an empty snapshot."""
    snapshot: Snapshot | None = None
    emitted: list[tuple[int, tuple[Command, ...]]] = []
    sent: list[tuple[int, tuple[Event, ...]]] = []
    for record in records:
        result = bounded_step(chart, snapshot, record.event)
        _check(record, result)
        snapshot = result.snapshot
        emitted.append((record.seq, result.commands))
        if result.messages:
            sent.append((record.seq, result.messages))
    return ReplayResult(snapshot, tuple(emitted), tuple(sent))


def _check(record: JournalRecord, result: StepResult) -> None:
    trace = result.trace
    if not trace.accepted or trace.seq != record.seq:
        raise ReplayMismatch(
            f"{record.key} seq {record.seq} ({record.event.type}): replay gave "
            f"{trace.outcome} at seq {trace.seq}"
        )
    if trace.ignored != record.ignored:
        raise ReplayMismatch(
            f"{record.key} seq {record.seq} ({record.event.type}): journal says ignored="
            f"{record.ignored}, replay says ignored={trace.ignored}"
        )
    if trace.raised != record.raised:
        raise ReplayMismatch(
            f"{record.key} seq {record.seq} ({record.event.type}): journal says raised "
            f"{list(record.raised)}, replay says raised {list(trace.raised)}"
        )
