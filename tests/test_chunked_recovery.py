"""ChunkedRecovery files each changelog record by Faust's rules: offsets only move forward,
a record at or below the partition's offset is skipped, buffers are applied when full,
and a record of a partition that is neither active nor standby is skipped (Faust's loop
would file it under the previous record's table)."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict, deque
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from app.infra.recovery import ChunkedRecovery

ACTIVE, STANDBY, OTHER = TP("s-changelog", 0), TP("s-changelog", 1), TP("x-changelog", 0)


@dataclass
class Record:
    tp: TP
    offset: int


class Table:
    recovery_buffer_size = 3
    standby_buffer_size = 2

    def __init__(self) -> None:
        self.applied: list[list[int]] = []
        self.seen: list[int] = []

    def apply_changelog_batch(self, batch: list[Any]) -> None:
        self.applied.append([event.message.offset for event in batch])

    async def on_changelog_event(self, event: Any) -> None:
        self.seen.append(event.message.offset)


def recovery(table: Table) -> Any:
    warnings: list[str] = []
    fake = SimpleNamespace(
        active_tps={ACTIVE},
        standby_tps={STANDBY},
        active_offsets=Counter(),
        standby_offsets=Counter(),
        _active_events_received_at={},
        _standby_events_received_at={},
        tp_to_table={ACTIVE: table, STANDBY: table},
        buffer_sizes={},
        buffers=defaultdict(list),
        _last_flush_at=None,
        _last_active_event_processed_at=None,
        _processing_times=deque(),
        num_samples_required_for_estimate=10,
        log=SimpleNamespace(warning=warnings.append),
        warnings=warnings,
    )
    fake._note_processing_time = lambda now: ChunkedRecovery._note_processing_time(fake, now)
    fake._file_changelog_event = lambda e: ChunkedRecovery._file_changelog_event(fake, e)
    return fake


def event(tp: TP, offset: int) -> Any:
    return SimpleNamespace(message=Record(tp, offset))


def file_all(fake: Any, events: list[Any]) -> None:
    async def run() -> None:
        for e in events:
            await ChunkedRecovery._file_guarded(fake, e)

    asyncio.run(run())


def test_active_records_are_buffered_and_applied_in_recovery_buffer_sizes() -> None:
    table = Table()
    fake = recovery(table)
    file_all(fake, [event(ACTIVE, n) for n in range(7)])
    assert table.applied == [[0, 1, 2], [3, 4, 5]]  # 6 waits in the buffer for the final flush
    assert [e.message.offset for e in fake.buffers[table]] == [6]
    assert fake.active_offsets[ACTIVE] == 6 and table.seen == list(range(7))
    assert len(fake._processing_times) == 6  # one gap between each two active records


def test_a_record_at_or_below_the_offset_seen_is_skipped() -> None:
    table = Table()
    fake = recovery(table)
    file_all(fake, [event(ACTIVE, 5), event(ACTIVE, 5), event(ACTIVE, 4), event(ACTIVE, 6)])
    assert table.seen == [5, 6] and fake.active_offsets[ACTIVE] == 6


def test_standby_records_use_the_standby_buffer_size() -> None:
    table = Table()
    fake = recovery(table)
    file_all(fake, [event(STANDBY, n) for n in range(4)])
    assert table.applied == [[0, 1], [2, 3]] and fake.standby_offsets[STANDBY] == 3
    assert fake._processing_times == deque()  # the estimate is about active partitions


def test_a_record_of_an_unknown_partition_is_skipped_with_a_warning() -> None:
    table = Table()
    fake = recovery(table)
    file_all(fake, [event(ACTIVE, 0), event(OTHER, 9)])
    assert table.seen == [0] and any("unknown" in w for w in fake.warnings)


def test_an_error_on_one_record_does_not_lose_the_next() -> None:
    class Failing(Table):
        async def on_changelog_event(self, event: Any) -> None:
            if event.message.offset == 1:
                raise RuntimeError("bad record")
            await super().on_changelog_event(event)

    table = Failing()
    fake = recovery(table)
    fake.tp_to_table = {ACTIVE: table, STANDBY: table}
    file_all(fake, [event(ACTIVE, n) for n in range(3)])
    assert table.seen == [0, 2] and any("bad record" in w for w in fake.warnings)
