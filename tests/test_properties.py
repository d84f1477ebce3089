"""Hypothesis properties of the reducer, each named after the invariant it checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.interpreter import StepResult, step
from app.core.model import Chart
from app.core.plans import cold_copy
from app.core.replay import replay
from app.core.snapshot import Snapshot, dumps, loads
from app.infra.chart_files import import_handlers, read_chart
from app.infra.outbox import journal_record
from app.spi.envelopes import Event, JournalRecord
from tests.strategies import charts, event_scripts, materialize

ROOT = Path(__file__).resolve().parents[1]
import_handlers([str(ROOT / "rss" / "handlers.py")])
EXAMPLES = {p.stem: read_chart(p) for p in sorted((ROOT / "rss").glob("*.yaml"))}
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def fold(chart: Chart, script: list[tuple[str, dict]]) -> tuple[list[Event], list[StepResult]]:
    """Step a start event and the script incrementally, as a live reducer would."""
    snapshot: Snapshot | None = None
    events: list[Event] = []
    results: list[StepResult] = []
    start = Event(chart.workflow, "i", "$start", "ev0", "2026-01-01T00:00:00Z", {"n": 0})
    for n, item in enumerate([("$start", {}), *script]):
        event = start if n == 0 else materialize(chart, snapshot, item[0], item[1], n)
        result = step(chart, snapshot, event)
        events.append(event)
        results.append(result)
        snapshot = result.snapshot
    return events, results


def _journal(events: list[Event], results: list[StepResult]) -> list[JournalRecord]:
    """The journal as it would be stored: records round-tripped through JSON."""
    records = []
    for event, result in zip(events, results, strict=True):
        record = journal_record(event, result)
        if record is not None:
            wire = json.loads(json.dumps(record.event.to_dict()))
            records.append(
                JournalRecord(record.seq, Event.from_dict(wire), record.ignored, record.status)
            )
    return records


def check_replay_equals_incremental_fold(chart: Chart, script: list[tuple[str, dict]]) -> None:
    events, results = fold(chart, script)
    records = _journal(events, results)
    assert [r.seq for r in records] == list(range(1, len(records) + 1)), "journal seq is gapless"
    replayed = replay(chart, records)
    last = next((r.snapshot for r in reversed(results) if r.snapshot is not None), None)
    assert (dumps(replayed.snapshot) if replayed.snapshot else None) == (
        dumps(last) if last else None
    )
    live = [(r.trace.seq, r.commands) for r in results if r.trace.accepted]
    assert list(replayed.commands) == live


def check_snapshot_restore_then_step_equals_step(
    chart: Chart, script: list[tuple[str, dict]]
) -> None:
    events, results = fold(chart, script)
    snapshot: Snapshot | None = None
    for event, expected in zip(events, results, strict=True):
        restored = loads(dumps(snapshot)) if snapshot is not None else None
        assert restored == snapshot
        again = step(chart, restored, event)
        assert again.commands == expected.commands
        assert (dumps(again.snapshot) if again.snapshot else None) == (
            dumps(expected.snapshot) if expected.snapshot else None
        )
        snapshot = expected.snapshot


@pytest.mark.parametrize("name", sorted(EXAMPLES))
@SETTINGS
@given(data=st.data())
def test_replay_equals_incremental_fold_on_examples(name: str, data: st.DataObject) -> None:
    chart = EXAMPLES[name]
    check_replay_equals_incremental_fold(chart, data.draw(event_scripts(chart)))


@pytest.mark.parametrize("name", sorted(EXAMPLES))
@SETTINGS
@given(data=st.data())
def test_snapshot_restore_step_equals_step_on_examples(name: str, data: st.DataObject) -> None:
    chart = EXAMPLES[name]
    check_snapshot_restore_then_step_equals_step(chart, data.draw(event_scripts(chart)))


@SETTINGS
@given(data=st.data())
def test_step_never_raises_on_random_valid_charts(data: st.DataObject) -> None:
    """Errors in a step become status `failed`; `step` itself never raises."""
    chart = data.draw(charts())
    _events, results = fold(chart, data.draw(event_scripts(chart)))
    for result in results:
        if result.trace.outcome == "failed":
            assert result.snapshot is not None and result.snapshot.status == "failed"
            assert result.snapshot.reason


@SETTINGS
@given(data=st.data())
def test_replay_equals_incremental_fold_on_random_charts(data: st.DataObject) -> None:
    chart = data.draw(charts())
    check_replay_equals_incremental_fold(chart, data.draw(event_scripts(chart)))


@SETTINGS
@given(data=st.data())
def test_snapshot_restore_step_equals_step_on_random_charts(data: st.DataObject) -> None:
    chart = data.draw(charts())
    check_snapshot_restore_then_step_equals_step(chart, data.draw(event_scripts(chart)))


def check_memoized_plans_step_like_a_cold_chart(
    chart: Chart, warm_up: list[tuple[str, dict]], script: list[tuple[str, dict]]
) -> None:
    """The chart's plan caches (selections, exit/entry plans) only cache: a chart warmed by
    one script steps another exactly like a chart whose caches are empty at every step."""
    fold(chart, warm_up)
    events, warm = fold(chart, script)
    snapshot: Snapshot | None = None
    for event, expected in zip(events, warm, strict=True):
        cold = step(cold_copy(chart), snapshot, event)
        assert (cold.trace, cold.commands) == (expected.trace, expected.commands)
        assert (dumps(cold.snapshot) if cold.snapshot else None) == (
            dumps(expected.snapshot) if expected.snapshot else None
        )
        snapshot = cold.snapshot


@SETTINGS
@given(data=st.data())
def test_memoized_plans_step_like_a_cold_chart_on_random_charts(data: st.DataObject) -> None:
    chart = data.draw(charts())
    warm_up, script = data.draw(event_scripts(chart)), data.draw(event_scripts(chart))
    check_memoized_plans_step_like_a_cold_chart(chart, warm_up, script)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
@SETTINGS
@given(data=st.data())
def test_memoized_plans_step_like_a_cold_chart_on_examples(name: str, data: st.DataObject) -> None:
    chart = cold_copy(EXAMPLES[name])
    warm_up, script = data.draw(event_scripts(chart)), data.draw(event_scripts(chart))
    check_memoized_plans_step_like_a_cold_chart(chart, warm_up, script)
