"""Hypothesis properties of the reducer, each named after the invariant it checks."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.interpreter import StepResult, step
from app.core.model import Chart
from app.core.plans import cold_copy
from app.core.replay import replay
from app.core.router import ChartRegistry
from app.core.snapshot import Snapshot, dumps, loads
from app.infra.chart_files import import_handlers, read_chart
from app.infra.outbox import journal_record
from app.spi.envelopes import Event, JournalRecord
from app.spi.limits import canonical_json
from tests.strategies import (
    World,
    charts,
    event_scripts,
    materialize,
    over_the_wire,
    world_event,
    world_scripts,
)

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
    """The journal as it would be stored: records (with the events they raised) whose event
    is round-tripped through JSON."""
    records = []
    for event, result in zip(events, results, strict=True):
        record = journal_record(event, result)
        if record is not None:
            wire = json.loads(json.dumps(record.event.to_dict()))
            records.append(replace(record, event=Event.from_dict(wire)))
    return records


def _messages(results: list[StepResult]) -> list[list[str]]:
    """The events each step sent to other instances, as the bytes that would travel."""
    return [[canonical_json(m.to_dict()) for m in r.messages] for r in results]


def check_replay_equals_incremental_fold(chart: Chart, script: list[tuple[str, dict]]) -> None:
    events, results = fold(chart, script)
    records = _journal(events, results)
    assert [r.seq for r in records] == list(range(1, len(records) + 1)), "journal seq is gapless"
    replayed = replay(chart, records)  # it also checks each record's raised events
    last = next((r.snapshot for r in reversed(results) if r.snapshot is not None), None)
    assert (dumps(replayed.snapshot) if replayed.snapshot else None) == (
        dumps(last) if last else None
    )
    live = [(r.trace.seq, r.commands) for r in results if r.trace.accepted]
    assert list(replayed.commands) == live
    # Replay re-sends the same child starts, cancels and answers, bit for bit.
    snapshot: Snapshot | None = None
    again = []
    for record in records:
        result = step(chart, snapshot, record.event)
        again.append(result)
        snapshot = result.snapshot
    assert _messages(again) == _messages([r for r in results if r.trace.accepted])


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
        assert _messages([again]) == _messages([expected])
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
            assert all(m.type == "$cancel" for m in result.messages), "a failure only cancels"
        check_child_starts_are_pending(result)


def check_child_starts_are_pending(result: StepResult) -> None:
    """Every child ``$start`` a step sends is a pending dispatch of kind ``workflow`` of the
    snapshot it leaves, with a running child, and its ``event_id`` is that dispatch id."""
    starts = [m for m in result.messages if m.type == "$start"]
    if not starts:
        return
    assert result.snapshot is not None and result.snapshot.is_active
    pending = {p.dispatch_id: p for p in result.snapshot.pending if p.kind == "workflow"}
    running = {c.dispatch_id for c in result.snapshot.children if c.status == "running"}
    for start in starts:
        assert start.parent is not None and start.parent.dispatch_id == start.event_id
        owner = pending.get(start.event_id)
        assert owner is not None, "a child start is a pending workflow dispatch"
        assert (owner.child_workflow, owner.child_id) == (start.workflow_type, start.instance_id)
        assert start.event_id in running, "a started child is running"


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
        assert _messages([cold]) == _messages([expected])
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


# -- parent and child instances talking by events (RSS v1.1 invoke) -------------------------


def run_world(parent: Chart, child: Chart, script: list[tuple[str, str, int]]) -> World:
    """A parent ``i`` started, then the script, each event's messages routed FIFO."""
    world = World(ChartRegistry([parent, child]))
    start = Event(parent.workflow, "i", "$start", "w0", "2026-01-01T00:00:00Z", {"n": 0})
    for n, item in enumerate([("parent", "$start", 0), *script]):
        event = start if n == 0 else world_event(world, parent, item, n)
        if event is not None:
            steps = world.send(event)
            assert len(steps) < world.max_steps, "the messages between instances run out"
    return world


def check_world_journals_refold_to_the_live_world(world: World) -> None:
    """Per instance: the journal's seq is gapless, and folding its journal again from seq 1
    gives the same snapshot and sends the same messages at every step, bit for bit."""
    for key in sorted(world.snapshots):
        live = [r for e, r in world.log if e.key == key and r.trace.accepted]
        assert [r.trace.seq for r in live] == list(range(1, len(live) + 1)), "gapless seq"
        snapshot: Snapshot | None = None
        for event, expected in zip(world.journal(key), live, strict=True):
            again = world.registry.route(snapshot, over_the_wire(event))
            assert (again.trace, again.commands) == (expected.trace, expected.commands)
            assert _messages([again]) == _messages([expected]), "same messages on replay"
            assert again.snapshot is not None and expected.snapshot is not None
            assert dumps(again.snapshot) == dumps(expected.snapshot), "same snapshot on replay"
            snapshot = again.snapshot
        assert snapshot is not None and dumps(snapshot) == dumps(world.snapshots[key])


def check_children_and_answers_agree(world: World, parent: Chart) -> None:
    """A parent's pending child dispatches are exactly its running children; every answer
    ties to a child the parent started, and no dispatch is answered twice."""
    parent_key = f"{parent.workflow}:i"
    snapshot = world.snapshots[parent_key]
    running = {c.dispatch_id for c in snapshot.children if c.status == "running"}
    pending = {p.dispatch_id for p in snapshot.pending if p.kind == "workflow"}
    assert running == pending, "running children are the pending child dispatches"
    started = {c.dispatch_id for c in snapshot.children}
    answers = [
        m for e, r in world.log if e.key != parent_key for m in r.messages if m.key == parent_key
    ]
    assert all(m.dispatch_id in started for m in answers), "answers tie to started children"
    ids = [m.dispatch_id for m in answers]
    assert len(ids) == len(set(ids)), "each child dispatch is answered at most once"
    for event, result in world.log:
        if result.trace.outcome == "failed":
            assert result.snapshot is not None and result.snapshot.status == "failed"
            assert result.snapshot.reason, event
        check_child_starts_are_pending(result)


@SETTINGS
@given(data=st.data())
def test_parent_and_child_journals_refold_to_the_live_world_on_random_charts(
    data: st.DataObject,
) -> None:
    """Generated parents invoke a generated child chart loaded with them; every step is
    routed through ChartRegistry.route and never raises."""
    parent = data.draw(charts())
    child = data.draw(charts(workflow="kid", invokes=None))
    world = run_world(parent, child, data.draw(world_scripts(parent, child)))
    check_world_journals_refold_to_the_live_world(world)
    check_children_and_answers_agree(world, parent)
