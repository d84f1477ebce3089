"""The built-in event ``$migrate`` (payload ``{to: N}``): move a running instance onto
another version of its chart, purely and deterministically, as one journaled step.

The steps are the spec's ("Versions and migration of running instances"), one function
each, in order:

1. :func:`map_configuration`: every active atomic state maps to the target its version's
   ``migrate.states`` entry names, or keeps its path when the new chart has it;
2. :func:`complete_configuration`: the targets are completed in the new chart (defaults of
   compound and parallel states entered, as SCXML's entry set) and must form a legal
   configuration;
3. :func:`transform_data`: the ``data`` transforms run over the old data (they set the keys
   they name and keep the others), then the new ``data_schema`` is checked;
4. :func:`carry_over`: no entry or exit actions run; timers of states that keep their path
   and ``after`` list keep their deadlines, the other active states' timers are armed from
   the ``$migrate`` event's time, timers of states left are cancelled; a pending dispatch
   whose owning state is gone is dropped (its later result is stale; a child workflow gets
   ``$cancel``); history is kept where its paths still exist;
5. :func:`migrate`: the snapshot's ``version`` becomes ``N``.

A migration that fails leaves the instance exactly as it was; the event is journaled
``ignored`` with the reason. A ``$migrate`` to the instance's own version is ignored too.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import replace
from typing import Any

from app.core import scxml
from app.core.bounds import size_problem
from app.core.errors import StepFailure
from app.core.expressions import to_json_value
from app.core.interpreter import StepResult, StepTrace
from app.core.model import ROOT, Chart, MigrationSpec
from app.core.run import MacrostepRun, set_path
from app.core.snapshot import Snapshot, Timer, dumps
from app.core.validation import check_data_schema, envelope_problem
from app.spi.envelopes import MIGRATE, Event


class MigrationFailure(StepFailure):
    """Why an instance cannot move onto the new version (the instance is left unchanged)."""


def migrate(versions: Mapping[int, Chart], snapshot: Snapshot | None, event: Event) -> StepResult:
    """Apply ``$migrate`` to ``snapshot`` (which runs on one of ``versions``)."""
    problem = envelope_problem(event) or _target_problem(event)
    if snapshot is None:
        problem = problem or "no such instance: the first event must be $start"
    if problem is not None or snapshot is None:
        return StepResult(snapshot, (), StepTrace("rejected", MIGRATE, None, problem))
    if event.event_id in snapshot.recent_event_ids:
        return StepResult(snapshot, (), StepTrace("duplicate", MIGRATE, None, "already applied"))
    base = snapshot.with_delivery(event.event_id, event.occurred_at)
    target = int(event.payload["to"])  # type: ignore[arg-type]
    reason = _refusal(versions, snapshot, target)
    if reason is None:
        try:
            return _migrated(versions[snapshot.version], versions[target], base, event)
        except StepFailure as failure:  # also a data expression or a timer deadline failing
            reason = f"migration to version {target} failed: {failure}"
    return StepResult(base, (), StepTrace("ignored", MIGRATE, base.seq, reason))


def _target_problem(event: Event) -> str | None:
    target = event.payload.get("to")
    if isinstance(target, bool) or not isinstance(target, int) or target < 1:
        return f'$migrate needs a payload {{"to": <version>}}, not {dict(event.payload)!r:.80}'
    return None


def _refusal(versions: Mapping[int, Chart], snapshot: Snapshot, target: int) -> str | None:
    if not snapshot.is_active:
        return f"instance is {snapshot.status}"
    if target == snapshot.version:
        return f"instance is already on version {target}"
    new = versions.get(target)
    if new is None:
        loaded = ", ".join(str(v) for v in sorted(versions))
        return f"version {target} is not loaded (loaded: {loaded})"
    if snapshot.version not in new.migrations:
        return f"version {target} declares no migrate from version {snapshot.version}"
    return None


def _migrated(old: Chart, new: Chart, base: Snapshot, event: Event) -> StepResult:
    spec = new.migrations[base.version]
    targets = map_configuration(new, spec, base.configuration)
    run = MacrostepRun(new, base, event, {ROOT})
    run.history = kept_history(new, base.history)
    run.timers = ()  # only the timers armed by the migration; carry_over adds the kept ones
    # A compound state's final child the instance already rests in (its done event was
    # raised when it was entered) keeps its place; the migration enters no final state.
    resting = frozenset(p for p in base.configuration if old.states[p].is_final)
    config = complete_configuration(run, targets, resting)
    data = transform_data(new, spec, base, event, config)
    migrated = carry_over(old, run, base, config)
    snapshot = replace(
        migrated,
        version=new.version,
        configuration=scxml.atomic_configuration(new, config),
        data=data,
    )
    messages = tuple(run.messages)  # the $cancel of every child whose invoke was dropped
    result = StepResult(snapshot, (), StepTrace("applied", MIGRATE, base.seq), messages=messages)
    text = dumps(snapshot)
    problem = size_problem(new, text, result)
    if problem is not None:
        raise MigrationFailure(problem)
    return replace(result, snapshot_json=text)


# -- 1. and 2.: the configuration ----------------------------------------------------------


def map_configuration(
    new: Chart, spec: MigrationSpec, configuration: tuple[str, ...]
) -> tuple[str, ...]:
    """Step 1: each active atomic state's target in the new chart."""
    targets = []
    for path in configuration:
        target = spec.states.get(path)
        if target is None and path in new.states and not new.states[path].is_history:
            target = path
        if target is None:
            raise MigrationFailure(
                f"state '{path}' has no place in version {new.version} "
                f"(map it under migrate.states for from: {spec.from_version})"
            )
        targets.append(target)
    return tuple(dict.fromkeys(targets))


def complete_configuration(
    run: MacrostepRun, targets: tuple[str, ...], resting: frozenset[str] = frozenset()
) -> set[str]:
    """Step 2: the targets with the states entered by default around them (SCXML's
    addDescendantStatesToEnter and addAncestorStatesToEnter from the root), checked to be
    a legal configuration of the new chart (``resting``: the final states already active)."""
    config: set[str] = set()
    # Every target's descendants before any ancestors (SCXML's computeEntrySet order): a
    # parallel ancestor then fills by default only the regions no target is in.
    for target in targets:
        scxml.add_descendant_states_to_enter(run, target, config)
    for target in targets:
        scxml.add_ancestor_states_to_enter(run, target, ROOT, config)
    config.add(ROOT)
    problem = illegal_configuration(run.chart, config, resting)
    if problem is not None:
        raise MigrationFailure(problem)
    return config


def illegal_configuration(
    chart: Chart, config: set[str], resting: frozenset[str] = frozenset()
) -> str | None:
    """Why ``config`` cannot be active together, or None: every active compound state has
    exactly one active child, every active parallel state all its regions, and no final
    state is entered (a migration runs no completion) but those in ``resting``, where the
    instance already was."""
    states = chart.states
    for path in sorted(config, key=lambda s: states[s].order):
        node = states[path]
        children = [c for c in node.children if not states[c].is_history]
        active = [c for c in children if c in config]
        if (node.is_compound or path == ROOT) and len(active) != 1:
            where = f"state '{path}'" if path else "the chart"
            return f"{where} would have {len(active)} active children ({', '.join(active)})"
        if node.is_parallel and len(active) != len(children):
            missing = ", ".join(c for c in children if c not in config)
            return f"parallel state '{path}' would miss regions ({missing})"
        if node.is_final and path not in resting:
            return f"'{path}' is a final state: a migration cannot enter it"
    return None


# -- 3.: data --------------------------------------------------------------------------------


def transform_data(
    new: Chart,
    spec: MigrationSpec,
    base: Snapshot,
    event: Event,
    config: Set[str] = frozenset(),
) -> Any:
    """Step 3: each ``data`` expression over the old data sets its key; the new
    ``data_schema`` must hold. ``in_state()`` answers over ``config``, the new chart's
    configuration the instance moves to (the load checks its paths against the new chart)."""
    variables = {
        "data": base.data,
        "event": {
            "type": MIGRATE,
            "payload": event.payload,
            "id": event.event_id,
            "occurred_at": event.occurred_at,
        },
    }
    data: Mapping[str, Any] = base.data
    for assignment in spec.data:
        where = f"migrate data {'.'.join(assignment.path)}"
        value = assignment.expr.evaluate(variables, config.__contains__)
        value = to_json_value(value, where, new.limits.json_depth)
        data = set_path(data, assignment.path, value)
    try:
        check_data_schema(new, data)
    except StepFailure as failure:
        raise MigrationFailure(str(failure)) from failure
    return data


# -- 4.: timers, pending work, history ------------------------------------------------------


def carry_over(old: Chart, run: MacrostepRun, base: Snapshot, config: set[str]) -> Snapshot:
    """Step 4: what the instance was waiting for, carried over where its state still is
    (and where the new chart still names it: a result for a name it no longer knows would
    never be taken for one, and the dispatch would wait for ever)."""
    new = run.chart
    before = scxml.full_configuration(old, base.configuration)
    pending = tuple(
        p
        for p in base.pending
        if (p.owner == ROOT or p.owner in config) and p.name in new.dispatch_names
    )
    kept_ids = {p.dispatch_id for p in pending}
    run.drop_pending([p for p in base.pending if p.dispatch_id not in kept_ids])
    timers = [
        t
        for t in base.timers
        if (
            t.dispatch_id in kept_ids
            if t.dispatch_id
            else _keeps_timers(old, new, before, config, t)
        )
    ]
    kept_states = {t.state for t in timers if t.dispatch_id is None}
    for path in sorted(config, key=lambda s: new.states[s].order):
        if path not in kept_states and not _keeps_after(old, new, before, path):
            for timer in new.states[path].after:
                run.arm(path, timer)
    return replace(
        base,
        timers=(*timers, *run.timers),
        pending=pending,
        history=run.history,
        children=run.children,
    )


def _keeps_timers(
    old: Chart, new: Chart, before: frozenset[str], config: set[str], timer: Timer
) -> bool:
    """An ``after`` timer stays armed when its state stays active (the new chart may still
    have a state the instance is mapped out of: its timers go) and keeps its delays."""
    return timer.state in config and _keeps_after(old, new, before, timer.state)


def _keeps_after(old: Chart, new: Chart, before: frozenset[str], path: str) -> bool:
    """A state that was active, is still there, and has the same ``after`` delays keeps its
    armed timers (their deadlines)."""
    if path not in before or path not in new.states or path not in old.states:
        return False
    delays = [t.delay_ms for t in old.states[path].after]
    return delays == [t.delay_ms for t in new.states[path].after]


def kept_history(new: Chart, history: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """Recorded history whose history state and recorded states all exist in ``new``."""
    states = new.states
    return {
        path: recorded
        for path, recorded in history.items()
        if path in states and states[path].is_history and all(r in states for r in recorded)
    }
