"""In-memory adapters of the ports, for development, the simulator and tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from app.core.ports import (
    OUTPUT_BYTES,
    OUTPUT_LIMIT,
    STORED_VALUE_BYTES,
    ArmedTimer,
    StoredInstance,
    armed_timers,
)
from app.core.snapshot import Snapshot, dumps
from app.spi.envelopes import Event, JournalRecord
from app.spi.errors import ConcurrencyConflict, StoredValueTooLarge
from app.spi.ports import Source, StepOutput


def check_gapless(records: Sequence[JournalRecord], last_seq: Callable[[str], int]) -> None:
    """Raise ConcurrencyConflict unless each record's seq is its instance's next one."""
    last = {key: last_seq(key) for key in {r.key for r in records}}
    for record in records:
        expected = last[record.key] + 1
        if record.seq != expected:
            raise ConcurrencyConflict(
                f"{record.key}: seq {record.seq} appended where {expected} is next"
            )
        last[record.key] = record.seq


class InMemoryJournal:
    """The event store as a dict of per-instance lists; appends are all-or-nothing."""

    def __init__(self) -> None:
        self._records: dict[str, list[JournalRecord]] = {}

    def append(self, records: Sequence[JournalRecord]) -> None:
        check_gapless(records, self._last_seq)
        for record in records:
            self._records.setdefault(record.key, []).append(record)

    def read(self, key: str, after_seq: int = 0) -> list[JournalRecord]:
        return [r for r in self._records.get(key, []) if r.seq > after_seq]

    def keys(self) -> Iterable[str]:
        return sorted(self._records)

    def _last_seq(self, key: str) -> int:
        records = self._records.get(key)
        return records[-1].seq if records else 0


class InMemoryInstanceStore:
    """Stored instances and timers in dicts. An output is confirmed by :meth:`confirm`, or
    by :meth:`delivered` (nothing else commits here). Outputs are measured by the bytes of
    their records, a value by those and its snapshot's canonical JSON: close to what a
    table stores."""

    def __init__(self) -> None:
        self.instances: dict[str, StoredInstance] = {}
        self.timers: dict[str, tuple[ArmedTimer, ...]] = {}
        self.commits = 0
        self._confirmed: set[Source] = set()

    def load(self, key: str) -> StoredInstance | None:
        return self.instances.get(key)

    def save(self, key: str, stored: StoredInstance) -> None:
        self.check(key, stored)
        self.instances[key] = stored

    def check(self, key: str, stored: StoredInstance) -> None:
        text = stored.snapshot_json if stored.snapshot_json is not None else dumps(stored.snapshot)
        size = len(text) + sum(map(_size, stored.outputs))
        if size > STORED_VALUE_BYTES:
            raise StoredValueTooLarge(
                f"{key}: a stored value of {size} bytes is over {STORED_VALUE_BYTES}"
            )

    def fits(self, key: str, outputs: Sequence[StepOutput]) -> bool:
        return len(outputs) <= OUTPUT_LIMIT and sum(map(_size, outputs)) <= OUTPUT_BYTES

    def unconfirmed(self, outputs: Sequence[StepOutput]) -> tuple[StepOutput, ...]:
        return tuple(o for o in outputs if o.source not in self._confirmed)

    async def confirm(self) -> None:
        """Every output saved so far is confirmed (its record was handled before)."""
        self.commits += 1
        self._confirmed.update(o.source for s in self.instances.values() for o in s.outputs)

    def delivered(self, output: StepOutput) -> None:
        self._confirmed.add(output.source)

    def save_timers(self, key: str, snapshot: Snapshot) -> None:
        if snapshot.timers:
            self.timers[key] = armed_timers(snapshot)
        else:
            self.timers.pop(key, None)

    def armed_timers(self) -> list[ArmedTimer]:
        return [timer for timers in self.timers.values() for timer in timers]


def _size(output: StepOutput) -> int:
    own = sum(len(value) for _, value in output.records)
    return own + sum(len(key) + len(value) for _, key, value in output.routed)


@dataclass(frozen=True, slots=True)
class DeadLetterNote:
    """A dead letter as :class:`InMemoryStepOutbox` keeps it."""

    reason: str
    stage: str
    source: Source
    key: bytes | None
    value: bytes | None
    event: Event | None


class InMemoryStepOutbox:
    """Keeps what the reducer sends, in order: outputs with their keys, and dead letters."""

    def __init__(self) -> None:
        self.outputs: list[tuple[str, StepOutput]] = []
        self.dead_letters: list[DeadLetterNote] = []

    async def send_output(self, key: str, output: StepOutput) -> None:
        self.outputs.append((key, output))

    async def send_dead_letter(
        self,
        reason: str,
        stage: str,
        source: Source,
        key: bytes | None,
        value: bytes | None,
        event: Event | None = None,
    ) -> None:
        self.dead_letters.append(DeadLetterNote(reason, stage, source, key, value, event))
