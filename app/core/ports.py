"""The reducer's store port: what it keeps per instance, and the timers it arms.

This port names the core's :class:`Snapshot`, so it lives here rather than in
:mod:`app.spi.ports` (the layer below the core). Adapters: ``InMemoryInstanceStore``
(:mod:`app.core.memory`) and ``TableInstanceStore`` (:mod:`app.infra.instance_store`, over
the Faust app's two RocksDB tables); both pass ``tests/test_instance_store_contract.py``.

Kafka without transactions cannot write a snapshot, a journal record and commands
atomically, so a store keeps each step's outputs *with* the snapshot, in one value: if the
snapshot survives a crash, so do its outputs, and a redelivery of their event sends them
again. An output is kept until it is confirmed (the offset of its source record is
committed, which happens only after the producer flushed it). ``OUTPUT_LIMIT`` unconfirmed
outputs, or ``OUTPUT_BYTES`` of them, are all one value keeps: beyond, the reducer asks
for a commit first (:meth:`InstanceStore.confirm`); an output larger than ``OUTPUT_BYTES``
on its own is never kept (the reducer makes it durable before it writes the snapshot).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from app.core.durations import parse_instant_ms
from app.core.snapshot import Snapshot, Timer
from app.spi.ports import StepOutput

OUTPUT_LIMIT = 32  # the unconfirmed outputs one stored value keeps at most
OUTPUT_BYTES = 64 * 1024  # ... and their stored size, together, at most
# The largest stored value written: a snapshot within OMNINODE_MAX_SNAPSHOT_BYTES with
# OUTPUT_BYTES of outputs is far below it; Kafka's default request limit is 1 MiB.
STORED_VALUE_BYTES = 900_000


@dataclass(frozen=True, slots=True)
class StoredInstance:
    """An instance's snapshot and the outputs of its recent steps not confirmed yet."""

    snapshot: Snapshot
    outputs: tuple[StepOutput, ...] = ()
    # The snapshot's canonical JSON when it is already made (``StepResult.snapshot_json``),
    # so that a store does not serialize it a second time.
    snapshot_json: str | None = field(default=None, compare=False, repr=False)

    def output_of(self, event_id: str) -> StepOutput | None:
        return next((o for o in self.outputs if o.event_id == event_id), None)


@dataclass(frozen=True, slots=True)
class ArmedTimer:
    """A timer armed by an instance, as the timer service fires it."""

    workflow_type: str
    instance_id: str
    timer: Timer
    # The deadline in ms since the epoch, parsed once (the timer service compares it on
    # every scan).
    deadline_ms: int = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "deadline_ms", parse_instant_ms(self.timer.deadline))


def armed_timers(snapshot: Snapshot) -> tuple[ArmedTimer, ...]:
    return tuple(ArmedTimer(snapshot.workflow, snapshot.instance_id, t) for t in snapshot.timers)


class InstanceStore(Protocol):
    """Stored instances and their armed timers, keyed ``workflowType:instanceId``.

    Stores raise :class:`app.spi.errors.StoredValueTooLarge` for a value over
    ``STORED_VALUE_BYTES`` (before writing anything) and turn a failure of their storage
    into :class:`app.spi.errors.StoreUnavailable`.
    """

    def load(self, key: str) -> StoredInstance | None:
        """The instance's stored value; None for an instance never saved."""
        ...

    def save(self, key: str, stored: StoredInstance) -> None:
        """Replace the instance's value: the snapshot with its outputs, one write."""
        ...

    def check(self, key: str, stored: StoredInstance) -> None:
        """Raise StoredValueTooLarge if :meth:`save` would; write nothing."""
        ...

    def fits(self, key: str, outputs: Sequence[StepOutput]) -> bool:
        """Whether ``outputs`` may be kept in the instance's value: at most
        ``OUTPUT_LIMIT`` of them, at most ``OUTPUT_BYTES`` stored together."""
        ...

    def unconfirmed(self, outputs: Sequence[StepOutput]) -> tuple[StepOutput, ...]:
        """``outputs`` but those already confirmed, in order."""
        ...

    async def confirm(self) -> None:
        """Make every output sent so far durable, and confirm the outputs of every record
        handled before the current one (a commit: flush the producer, then commit)."""
        ...

    def delivered(self, output: StepOutput) -> None:
        """Every record of ``output`` is acknowledged by the broker: it is confirmed (never
        needed for a re-send), though its source record may not be committed yet."""
        ...

    def save_timers(self, key: str, snapshot: Snapshot) -> None:
        """Mirror the snapshot's armed timers (none: the instance has no timers left)."""
        ...

    def armed_timers(self) -> list[ArmedTimer]:
        """Every timer armed in the store, for the timer service to scan."""
        ...
