"""In-memory adapters of the SPI ports, for development, the simulator and tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from app.spi.envelopes import JournalRecord
from app.spi.errors import ConcurrencyConflict


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

