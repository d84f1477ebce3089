"""Ports: the small protocols that adapters (in-memory, Kafka) implement.

Adapters translate their infrastructure's errors into :mod:`app.spi.errors`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from app.spi.envelopes import JournalRecord


class Journal(Protocol):
    """The event store: per-instance, append-only, gapless ``seq`` from 1."""

    def append(self, records: Sequence[JournalRecord]) -> None:
        """Append records; a seq already taken for that instance raises ConcurrencyConflict."""
        ...

    def read(self, key: str, after_seq: int = 0) -> list[JournalRecord]:
        """An instance's records with ``seq > after_seq``, in seq order."""
        ...

    def keys(self) -> Iterable[str]:
        """Every instance key that has records."""
        ...

