"""Hypothesis properties of ``$migrate`` over generated charts (tests/strategies.py), each
named after the invariant it checks:

- migrating to an identical chart with an identity mapping changes nothing but the version
  and the delivery (seq, event id, time); timers keep their deadlines; afterwards the same
  events give the same outcomes, configurations and data on both versions;
- migration never raises, whatever the charts and the mapping, and what it leaves is a
  legal instance of the new version (or, when it fails, the instance as it was).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from unittest.mock import patch

import hypothesis
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core import scxml
from app.core.guards import GuardRegistry
from app.core.interpreter import StepResult
from app.core.loader import load_chart
from app.core.migration import illegal_configuration
from app.core.migration_build import check_migrations
from app.core.model import ROOT, Chart
from app.core.router import ChartRegistry
from app.core.snapshot import Snapshot, dumps, loads
from app.infra.outbox import journal_record
from app.spi.envelopes import CANCEL, MIGRATE, Event
from tests import strategies
from tests.strategies import ASSIGNS, charts, event_scripts, materialize

# Fewer examples than tests/test_properties.py: each loads two or three generated charts.
SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
T0 = "2026-01-01T00:00:00Z"
# libyaml when there is one: the pure-Python YAML is most of these examples' time.
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


# -- generated versions ---------------------------------------------------------------------


@st.composite
def chart_documents(draw: st.DrawFn) -> tuple[Chart, dict[str, Any]]:
    """A generated chart (tests.strategies.charts) with the YAML document it loaded from."""
    texts: list[str] = []

    def keep_text(text: str, file: str, guards: GuardRegistry) -> Chart:
        texts.append(text)
        return load_chart(text, file, guards)

    with patch.object(strategies, "load_chart", keep_text):
        chart = draw(charts())
    [text] = texts
    return chart, yaml.load(text, Loader=LOADER)


def version_2(doc: dict[str, Any], migrate: dict[str, Any]) -> Chart:
    """``doc`` as version 2, migrating from version 1 with ``migrate``."""
    text = yaml.dump(
        {**doc, "version": 2, "migrate": [{"from": 1, **migrate}]},
        Dumper=DUMPER,
        sort_keys=False,
    )
    return load_chart(text, "rnd-v2.yaml", GuardRegistry())


@st.composite
def identical_versions(draw: st.DrawFn) -> tuple[Chart, Chart]:
    """A generated chart and the same text as version 2 with ``migrate: [{from: 1}]``."""
    old, doc = draw(chart_documents())
    return old, version_2(doc, {})


@st.composite
def migrated_versions(draw: st.DrawFn) -> tuple[Chart, Chart]:
    """Two generated charts of one workflow, the second (version 2) with a generated
    ``migrate`` entry: some old atomic states mapped to any state of the new chart
    (compound, parallel, final ones included), data transforms that may fail at run time,
    and now and then a ``data_schema`` the data may not fit."""
    old, _ = draw(chart_documents())
    new, doc = draw(chart_documents())
    atomic = sorted(p for p, node in old.states.items() if p != ROOT and node.is_atomic)
    targets = sorted(p for p, node in new.states.items() if p != ROOT and not node.is_history)
    # Each old atomic state mapped, or left to keep its path when the new chart has it.
    states = {p: draw(st.sampled_from(targets)) for p in atomic if draw(st.booleans())}
    keys = draw(st.lists(st.sampled_from(["n", "m", "deep.x"]), unique=True, max_size=3))
    data = {key: draw(st.sampled_from(ASSIGNS)) for key in keys}
    if draw(st.integers(0, 3)) == 0:
        doc["data_schema"] = {"type": "object", "properties": {"n": {"type": "integer"}}}
    migrate: dict[str, Any] = {"states": states} if states else {}
    if data:
        migrate["data"] = data
    return old, version_2(doc, migrate)


# -- driving an instance through the registry -----------------------------------------------


def started(
    registry: ChartRegistry, old: Chart, script: list[tuple[str, dict]]
) -> tuple[Snapshot, int]:
    """The instance ``i`` started on version 1, stepped through ``script`` while it stays
    active (a migration of a finished instance is only refused); with the number of items
    it took."""
    start = Event(old.workflow, "i", "$start", "ev0", T0, {"n": 0}, version=1)
    snapshot = registry.route(None, start).snapshot
    assert snapshot is not None and snapshot.version == 1
    for n, (kind, payload) in enumerate(script, start=1):
        if not snapshot.is_active:
            return snapshot, n - 1  # the start failed it
        result = registry.route(snapshot, materialize(old, snapshot, kind, payload, n))
        if result.snapshot is not None and not result.snapshot.is_active:
            return snapshot, n - 1
        snapshot = result.snapshot or snapshot
    return snapshot, len(script)


def migrate_event(workflow: str, n: int) -> Event:
    """``$migrate`` to version 2 as the ``n``-th scripted event (at its time)."""
    at = f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}Z"  # as tests.strategies.materialize
    return Event(workflow, "i", MIGRATE, "migrate", at, {"to": 2})


def check_refused_leaves_instance_as_it_was(
    before: Snapshot, event: Event, result: StepResult
) -> None:
    assert result.trace.outcome == "ignored" and result.trace.reason
    assert result.snapshot == before.with_delivery(event.event_id, event.occurred_at)
    assert (result.commands, result.messages) == ((), ())


# -- identity migration ---------------------------------------------------------------------


def check_identity_changes_nothing_but_version_and_seq(
    before: Snapshot, event: Event, result: StepResult
) -> Snapshot:
    assert result.trace.outcome == "applied", result.trace.reason
    after = result.snapshot
    assert after is not None
    assert (after.version, after.seq) == (2, before.seq + 1), "version switched, seq + 1"
    assert after.recent_event_ids[-1] == event.event_id
    assert after.updated_at == event.occurred_at
    assert after.timers == before.timers, "timers keep their ids and deadlines"
    same = replace(
        after,
        version=before.version,
        seq=before.seq,
        recent_event_ids=before.recent_event_ids,
        updated_at=before.updated_at,
    )
    assert same == before, "nothing else changes"
    assert (result.commands, result.messages) == ((), ()), "no actions run, no child is told"
    record = journal_record(event, result, before)
    assert record is not None and (record.ignored, record.workflow_version) == (False, 2)
    return after


def check_same_behaviour_on_both_versions(
    registry: ChartRegistry,
    old: Chart,
    kept: Snapshot,
    migrated: Snapshot,
    script: list[tuple[str, dict]],
    first: int,
) -> None:
    """The same events (their ids, times and payloads), stepped on the instance left on
    version 1 and on the one migrated to version 2, give the same outcomes and states."""
    for n, (kind, payload) in enumerate(script, start=first):
        one = materialize(old, kept, kind, payload, n)
        two = materialize(old, migrated, kind, payload, n)
        assert (one.type, one.event_id, one.occurred_at, one.payload) == (
            two.type,
            two.event_id,
            two.occurred_at,
            two.payload,
        )
        a, b = registry.route(kept, one), registry.route(migrated, two)
        assert (a.trace.outcome, a.trace.reason) == (b.trace.outcome, b.trace.reason)
        kept, migrated = a.snapshot or kept, b.snapshot or migrated
        assert (kept.version, migrated.version) == (1, 2), "each instance keeps its version"
        assert (kept.status, kept.configuration, kept.data) == (
            migrated.status,
            migrated.configuration,
            migrated.data,
        )
        assert [(t.deadline, t.event, t.state) for t in kept.timers] == [
            (t.deadline, t.event, t.state) for t in migrated.timers
        ]


@SETTINGS
@given(data=st.data())
def test_identity_migration_changes_nothing_but_version_and_seq(data: st.DataObject) -> None:
    old, new = data.draw(identical_versions())
    registry = ChartRegistry([old, new])
    script = data.draw(event_scripts(old)) + data.draw(event_scripts(old))
    before, taken = started(registry, old, script)
    event = migrate_event(old.workflow, taken + 1)
    result = registry.route(before, event)
    if not before.is_active:  # the start itself failed the instance
        check_refused_leaves_instance_as_it_was(before, event, result)
        assert result.trace.reason == f"instance is {before.status}"
        return
    hypothesis.event("migrated after some events" if taken else "migrated right after $start")
    migrated = check_identity_changes_nothing_but_version_and_seq(before, event, result)
    # The rest of the script, with the event that ends the instance if one does.
    check_same_behaviour_on_both_versions(
        registry, old, before, migrated, script[taken:], taken + 2
    )


# -- any migration --------------------------------------------------------------------------


def check_migrated_instance_is_legal(
    old: Chart, new: Chart, before: Snapshot, event: Event, result: StepResult
) -> None:
    after = result.snapshot
    assert after is not None and result.trace.seq == before.seq + 1
    assert (after.version, after.seq, after.status) == (2, before.seq + 1, "active")
    full = scxml.full_configuration(new, after.configuration)
    resting = frozenset(
        p for p in before.configuration if old.states[p].is_final and p in after.configuration
    )
    assert illegal_configuration(new, set(full), resting) is None, "a legal configuration"
    assert all(t.state in full for t in after.timers), "timers only of active states"
    was_active = scxml.full_configuration(old, before.configuration)
    for path in full - was_active:
        armed = {t.index for t in after.timers if t.state == path and t.dispatch_id is None}
        assert armed == set(range(len(new.states[path].after))), "newly active states armed"
    assert all(p.owner in full for p in after.pending), "pending only of active states"
    assert {p.dispatch_id for p in after.pending} <= {p.dispatch_id for p in before.pending}
    assert all(new.states[h].is_history for h in after.history), "history of existing states"
    dropped = [p for p in before.pending if p not in after.pending and p.kind == "workflow"]
    assert [(m.type, m.instance_id) for m in result.messages] == [
        (CANCEL, p.child_id) for p in dropped
    ], "a dropped child is cancelled"
    assert result.commands == (), "no actions run"
    assert loads(dumps(after)) == after


@SETTINGS
@given(data=st.data())
def test_migration_never_raises_on_generated_charts_and_mappings(data: st.DataObject) -> None:
    old, new = data.draw(migrated_versions())
    assert check_migrations([old, new]) == []
    registry = ChartRegistry([old, new])
    before, taken = started(registry, old, data.draw(event_scripts(old)))
    event = migrate_event(old.workflow, taken + 1)
    result = registry.route(before, event)
    hypothesis.event(f"$migrate {result.trace.outcome}")
    if result.trace.outcome == "ignored":
        check_refused_leaves_instance_as_it_was(before, event, result)
        assert before.status != "active" or (result.trace.reason or "").startswith(
            "migration to version 2 failed: "
        )
        return
    check_migrated_instance_is_legal(old, new, before, event, result)
    # The migrated instance steps on version 2 like any other instance: never raising.
    snapshot = result.snapshot
    for n, (kind, payload) in enumerate(data.draw(event_scripts(new)), start=taken + 2):
        stepped = registry.route(snapshot, materialize(new, snapshot, kind, payload, n))
        snapshot = stepped.snapshot or snapshot
        assert snapshot.version == 2
