"""Ports: the small protocols that adapters (in-memory, Kafka) implement.

Adapters translate their infrastructure's errors into :mod:`app.spi.errors`. The port that
keeps the reducer's snapshots, :class:`app.core.ports.InstanceStore`, is in the core: it
names the core's ``Snapshot``, and this layer is below the core.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from app.spi.envelopes import Event, JournalRecord

Source = tuple[str, int, int]  # topic, partition, offset of the record being handled


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


@dataclass(frozen=True, slots=True)
class StepOutput:
    """What one applied event sends: its journal record, then its commands, each already
    encoded for its topic, and where that event was read from.

    The records are kept as sent, so a redelivery sends the same bytes again whatever the
    decoders of the day accept. ``records`` holds (logical topic, value) pairs, in order,
    keyed by the instance; ``routed`` holds (logical topic, key, value) for records about
    other instances (a child's ``$start`` or ``$cancel``, the answer to a parent), sent after.
    """

    event_id: str
    topic: str
    partition: int
    offset: int
    records: tuple[tuple[str, bytes], ...]
    routed: tuple[tuple[str, str, bytes], ...] = ()

    @property
    def source(self) -> Source:
        return (self.topic, self.partition, self.offset)


class StepOutbox(Protocol):
    """Where the reducer publishes: the outputs of its steps and its dead letters. Sends
    are buffered, never awaited one by one; a commit makes them durable first."""

    async def send_output(self, key: str, output: StepOutput) -> None:
        """Send the output's records in their order, keyed by the instance key, then its
        routed records with their own keys."""
        ...

    async def send_dead_letter(
        self,
        reason: str,
        stage: str,
        source: Source,
        key: bytes | None,
        value: bytes | None,
        event: Event | None = None,
    ) -> None:
        """Keep an inbound record's original bytes, with the reason and where they came
        from (``stage``: decode, route, step or internal)."""
        ...
