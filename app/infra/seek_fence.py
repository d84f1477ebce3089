"""Which fetched stream records may still be delivered once the consumer has been moved.

Faust fetches in its consumer thread and delivers on the app's loop. A fetch that was
in flight while the consumer was moved (a seek to the committed offsets after a
rebalance, a revoke, an assign) can come back *after* the move and be delivered: its
records continue from the old position, and Faust's consumer counts the offsets
between the committed one and the first such record as a gap, i.e. acknowledged. They
are committed without ever being processed. Measured with the embedded broker (which
also keeps the group generation across assignments, so Faust's own generation check
does not fire): partition 1 of the events topic, committed at 21, delivered 40 next and
22-39 were never applied.

The fence gives every move a new epoch and delivers a record only if no move happened
since its fetch was issued, and none is in flight. A stale record is dropped and its
partition is sought back to where delivery must continue: right after the last record
delivered, or where the last seek put it. Nothing in between is skipped, so nothing can
be counted as a gap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Partition = TypeVar("Partition")


@dataclass
class SeekFence(Generic[Partition]):
    epoch: int = 0
    fetch_epoch: int = 0
    seeks_in_flight: int = 0
    dropped: int = 0
    next_offset: dict[Partition, int] = field(default_factory=dict)
    pending: set[Partition] = field(default_factory=set)

    def fetch_issued(self) -> None:
        """A fetch is about to be sent to the consumer thread."""
        self.fetch_epoch = self.epoch

    def moved(self) -> None:
        """The consumer's positions or assignment changed (or are about to)."""
        self.epoch += 1

    def seek_started(self) -> None:
        self.seeks_in_flight += 1
        self.moved()

    def seek_finished(self, positions: Mapping[Partition, int]) -> None:
        self.next_offset.update(positions)
        self.seeks_in_flight -= 1
        self.moved()

    def revoked(self, partitions: Iterable[Partition]) -> None:
        for partition in partitions:
            self.next_offset.pop(partition, None)
        self.moved()

    def admit(self, partition: Partition, offset: int) -> bool:
        """Whether a fetched record may be delivered (then it is, so it moves on).

        Nothing is while a seek is in flight: the consumer thread may already have
        moved the partition while Faust's read offsets on this side are not updated
        yet, so no record fetched around it can be placed safely."""
        if self.seeks_in_flight or self.epoch != self.fetch_epoch:
            self.dropped += 1
            return False
        self.next_offset[partition] = offset + 1
        return True

    def resume_at(self, partition: Partition) -> int | None:
        """Where a partition whose records were dropped must be read from again.

        None while a seek is in flight: that seek may already have run in the consumer
        thread, before the fetch that was dropped, so the partition is kept for
        ``settled``. None too when nothing is known since the partition was revoked:
        the seek that follows every assignment places it."""
        if self.seeks_in_flight:
            self.pending.add(partition)
            return None
        return self.next_offset.get(partition)

    def settled(self) -> dict[Partition, int]:
        """Once no seek is in flight: the partitions dropped meanwhile, and where each
        must be read from again."""
        if self.seeks_in_flight:
            return {}
        pending, self.pending = self.pending, set()
        return {p: self.next_offset[p] for p in pending if p in self.next_offset}
