"""The projectors' folds: old records skipped, state counts moved."""

from __future__ import annotations

from app.spi.envelopes import Event
from projectors.instances import project
from projectors.state_counts import deltas


def test_projection_folds_skip_old_records_and_move_counts() -> None:
    from app.spi.envelopes import JournalRecord  # noqa: PLC0415

    start = JournalRecord(1, Event("w", "i", "$start", "e1", "t1"), False, "active", 1, ("a",))
    done = JournalRecord(2, Event("w", "i", "GO", "e2", "t2"), False, "done", 1, ("b",))
    first = project(None, start)
    assert first is not None and deltas(None, first) == {"w:a": 1, "w:(status:active)": 1}
    second = project(first, done)
    assert second is not None and (second.seq, second.updated_at) == (2, "t2")
    assert deltas(first, second) == {
        "w:a": -1,
        "w:b": 1,
        "w:(status:active)": -1,
        "w:(status:done)": 1,
    }
    assert project(second, start) is None  # a redelivered older record changes nothing
