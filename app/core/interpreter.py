"""The reducer: ``step(chart, snapshot, event) -> StepResult(snapshot, commands, trace)``.

It follows the SCXML algorithm (as XState does): select transitions, remove conflicts,
microstep (exit set, transition content, entry set), then eventless ``always`` transitions
and raised done events until stable. Pure: no clock, no I/O, no randomness; time comes
from ``event.occurred_at``. Every run-time error becomes status ``failed``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from app.core import paths
from app.core.durations import parse_instant_ms
from app.core.errors import StepFailure
from app.core.model import NO_ACTIONS, ROOT, Chart, StateNode, Transition
from app.core.plans import MicrostepPlan, plans_of, remember
from app.core.run import MAX_MICROSTEPS, MacrostepRun, compensation_commands
from app.core.snapshot import PendingDispatch, Snapshot
from app.spi.envelopes import CANCEL, RESULT_SUFFIXES, START, TIMER_PREFIX, Command, Event
from app.spi.limits import json_problem

Outcome = Literal["applied", "ignored", "duplicate", "rejected", "failed"]


@dataclass(frozen=True, slots=True)
class StepTrace:
    """What a step did, for the journal, the simulator and debugging."""

    outcome: Outcome
    event_type: str
    seq: int | None
    reason: str | None = None
    transitions: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def ignored(self) -> bool:
        return self.outcome == "ignored"

    @property
    def accepted(self) -> bool:
        """Journaled with a seq: everything but duplicates and rejections."""
        return self.outcome in ("applied", "ignored", "failed")


@dataclass(frozen=True, slots=True)
class StepResult:
    snapshot: Snapshot | None
    commands: tuple[Command, ...]
    trace: StepTrace
    # The snapshot's canonical JSON when :func:`app.core.bounds.bounded_step` measured it.
    snapshot_json: str | None = None


def step(chart: Chart, snapshot: Snapshot | None, event: Event) -> StepResult:
    """Apply one event to one instance. Never raises for a valid chart; a malformed envelope
    (bad time, empty id or type, a payload that is not plain JSON within the chart's
    ``json_depth``) is rejected with the reason, like any invalid event."""
    problem = _envelope_problem(event) or _plain_payload_problem(chart, event)
    if problem:
        return _rejected(snapshot, event, problem)
    if snapshot is None:
        if event.type != START:
            return _rejected(None, event, "no such instance: the first event must be $start")
        problem = _payload_problem(chart, event)
        return _rejected(None, event, problem) if problem else _start(chart, event)
    if event.event_id in snapshot.recent_event_ids:
        return StepResult(snapshot, (), StepTrace("duplicate", event.type, None, "already applied"))
    problem = _payload_problem(chart, event)
    if problem:
        return _rejected(snapshot, event, problem)
    base = snapshot.with_delivery(event.event_id, event.occurred_at)
    if not snapshot.is_active:
        return _ignored(base, event, f"instance is {snapshot.status}")
    if event.type == START:
        return _ignored(base, event, "instance already started")
    return _deliver(chart, base, event)


# -- entry points per kind of event ------------------------------------------------------


def _start(chart: Chart, event: Event) -> StepResult:
    data = {**chart.initial_data, **event.payload}
    base = Snapshot(
        workflow=chart.workflow,
        version=chart.version,
        instance_id=event.instance_id,
        status="active",
        configuration=(),
        data=chart.initial_data,
        seq=1,
        history={},
        timers=(),
        pending=(),
        completed_effects=(),
        recent_event_ids=(event.event_id,),
        updated_at=event.occurred_at,
    )
    run = MacrostepRun(chart, base, event, {ROOT})
    run.data = data
    initial = Transition(
        0, ROOT, None, (chart.root.initial or "",), None, None, NO_ACTIONS, False, chart.root.line
    )
    return _run_macrostep(chart, base, run, lambda: _initial_entry(run, initial))


def _deliver(chart: Chart, base: Snapshot, event: Event) -> StepResult:
    run = MacrostepRun(chart, base, event, full_configuration(chart, base.configuration))
    if event.type == CANCEL:
        return _run_macrostep(chart, base, run, lambda: _cancel(run))
    if event.type.startswith(TIMER_PREFIX):
        timer = next((t for t in base.timers if _timer_matches(t.id, t.event, event)), None)
        if timer is None:
            return _ignored(base, event, "timer is no longer armed")
        run.timers.remove(timer)
    elif _is_result(chart, event.type):
        pending = _matching_dispatch(base, event)
        if pending is None:
            return _ignored(base, event, "result for a dispatch that is no longer pending")
        run.settle(pending, event.type)
    return _run_macrostep(chart, base, run, lambda: _handle_external(run, event.type))


def _handle_external(run: MacrostepRun, event_type: str) -> bool:
    enabled = select_transitions(run, event_type)
    if not enabled:
        return False
    microstep(run, enabled)
    stabilize(run)
    return True


def _initial_entry(run: MacrostepRun, initial: Transition) -> bool:
    enter_states(run, entry_order(run, [initial]))
    stabilize(run)
    return True


def _cancel(run: MacrostepRun) -> bool:
    exit_states(run, sorted(run.config - {ROOT}, key=_exit_key(run.chart)))
    run.finish("cancelled", None)
    return True


def _run_macrostep(
    chart: Chart, base: Snapshot, run: MacrostepRun, body: Callable[[], bool]
) -> StepResult:
    """Run ``body``; turn a run-time error into status ``failed`` keeping the last valid state."""
    try:
        changed = body()
        if changed:
            _check_data_schema(chart, run)
    except StepFailure as failure:
        return _failed(chart, base, run, str(failure))
    if not changed:
        # Settling a result or consuming a timer is still recorded, but nothing else moves.
        quiet = replace(
            base,
            timers=tuple(run.timers),
            pending=tuple(run.pending),
            completed_effects=tuple(run.completed),
        )
        return _ignored(quiet, run.event, "no transition selected")
    return _applied(chart, base, run)


# -- outcomes ------------------------------------------------------------------------------


def _applied(chart: Chart, base: Snapshot, run: MacrostepRun) -> StepResult:
    commands = list(run.commands)
    if run.status in ("failed", "cancelled"):
        commands += compensation_commands(chart, base.instance_id, base.seq, run.completed)
    configuration = atomic_configuration(chart, run.config) if run.status != "cancelled" else ()
    # One constructor call instead of dataclasses.replace: this runs on every applied step.
    snapshot = Snapshot(
        workflow=base.workflow,
        version=base.version,
        instance_id=base.instance_id,
        status=run.status,
        configuration=configuration,
        data=run.data,
        seq=base.seq,
        history=dict(run.history),
        timers=tuple(run.timers),
        pending=tuple(run.pending),
        completed_effects=tuple(run.completed),
        recent_event_ids=base.recent_event_ids,
        updated_at=base.updated_at,
        reason=_final_reason(run),
    )
    trace = StepTrace("applied", run.event.type, base.seq, None, tuple(run.taken))
    return StepResult(snapshot, tuple(commands), trace)


def _failed(chart: Chart, base: Snapshot, run: MacrostepRun, reason: str) -> StepResult:
    """Discard the step's changes; keep the last valid data and configuration; compensate."""
    completed = list(run.completed)
    commands = compensation_commands(chart, base.instance_id, base.seq, completed)
    snapshot = replace(
        base,
        status="failed",
        timers=(),
        pending=(),
        completed_effects=tuple(completed),
        reason=reason,
    )
    return StepResult(
        snapshot, tuple(commands), StepTrace("failed", run.event.type, base.seq, reason)
    )


def _ignored(base: Snapshot, event: Event, reason: str) -> StepResult:
    return StepResult(base, (), StepTrace("ignored", event.type, base.seq, reason))


def _rejected(snapshot: Snapshot | None, event: Event, reason: str) -> StepResult:
    return StepResult(snapshot, (), StepTrace("rejected", event.type, None, reason))


def _final_reason(run: MacrostepRun) -> str | None:
    if run.status == "failed" and run.final_state:
        return f"reached final state '{run.final_state}' (status failed)"
    if run.status == "cancelled":
        return "cancelled"
    return None


# -- SCXML: transition selection -----------------------------------------------------------


def select_transitions(run: MacrostepRun, event_type: str | None) -> list[Transition]:
    """For each active atomic state in document order, the first enabled transition found
    from the state up through its ancestors; then conflicts are removed. A selection that
    consulted no guard, ``when`` or history is the configuration's alone and is memoized."""
    chart = run.chart
    if run.config.isdisjoint(_states_handling(chart, event_type)):
        return []  # no active state has a transition for this event (or an `always`)
    plans = plans_of(chart)
    key = (frozenset(run.config), event_type)
    known = plans.selections.get(key)
    if known is not None:
        return list(known)
    enabled, data_free = _first_enabled_per_atomic(run, event_type)
    run.history_consulted = False
    selected = remove_conflicting_transitions(run, enabled)
    if data_free and not run.history_consulted:
        remember(plans.selections, key, tuple(selected))
    return selected


def _first_enabled_per_atomic(
    run: MacrostepRun, event_type: str | None
) -> tuple[list[Transition], bool]:
    """The enabled transitions before conflicts are removed, and whether no guard or
    ``when`` was evaluated to find them (then they depend on the configuration alone)."""
    chart = run.chart
    enabled: list[Transition] = []
    data_free = True
    for atomic in _active_atomic(chart, run.config):
        for path in (atomic, *chart.states[atomic].ancestors):
            node = chart.states[path]
            candidates = node.always if event_type is None else node.transitions.get(event_type, ())
            chosen = None
            for candidate in candidates:
                data_free = data_free and candidate.guard is None and candidate.when is None
                if _is_enabled(run, candidate):
                    chosen = candidate
                    break
            if chosen is not None:
                if chosen not in enabled:
                    enabled.append(chosen)
                break
    return enabled, data_free


def _states_handling(chart: Chart, event_type: str | None) -> frozenset[str]:
    """States with a transition for ``event_type`` (``None``: an ``always``), per chart."""
    key = ("handling", event_type)
    found: frozenset[str] | None = chart.memo.get(key)
    if found is None:
        found = frozenset(
            path
            for path, node in chart.states.items()
            if (node.always if event_type is None else node.transitions.get(event_type))
        )
        chart.memo[key] = found
    return found


def _is_enabled(run: MacrostepRun, transition: Transition) -> bool:
    if transition.guard is None and transition.when is None:
        return True
    run.evaluations += 1
    if run.evaluations > run.chart.limits.evaluations_per_step:
        raise StepFailure(
            f"more than {run.chart.limits.evaluations_per_step} guard/when evaluations in one "
            "step (OMNINODE_MAX_EVALUATIONS_PER_STEP)"
        )
    if transition.guard is not None:
        predicate = run.chart.guards.get(transition.guard)
        if predicate is None:
            raise StepFailure(f"guard '{transition.guard}' is not registered")
        try:
            return bool(predicate(run.data, run.event_vars))
        except Exception as exc:
            raise StepFailure(
                f"guard '{transition.guard}' raised {type(exc).__name__}: {exc}"
            ) from exc
    if transition.when is not None:
        verdict = transition.when.evaluate(run.variables())
        if not isinstance(verdict, bool):
            raise StepFailure(
                f"'when' expression {transition.when.source!r} (line {transition.when.line}) "
                f"returned {type(verdict).__name__}, not bool"
            )
        return verdict
    return True


def remove_conflicting_transitions(
    run: MacrostepRun, enabled: list[Transition]
) -> list[Transition]:
    """SCXML's removeConflictingTransitions: when two exit sets intersect, a transition from a
    descendant preempts one from its ancestor; otherwise the earlier selection wins."""
    kept: list[Transition] = []
    exit_sets: dict[int, set[str]] = {}
    for candidate in enabled:
        candidate_exits = compute_exit_set(run, [candidate])
        preempted = False
        to_drop: list[Transition] = []
        for earlier in kept:
            if candidate_exits & exit_sets[earlier.order]:
                if paths.is_descendant(candidate.source, earlier.source):
                    to_drop.append(earlier)
                else:
                    preempted = True
                    break
        if not preempted:
            kept = [t for t in kept if t not in to_drop]
            kept.append(candidate)
            exit_sets[candidate.order] = candidate_exits
    return kept


# -- SCXML: microstep ------------------------------------------------------------------------


def microstep(run: MacrostepRun, enabled: list[Transition]) -> None:
    """Exit the exit set, run the transitions' content, enter the entry set. The sets come
    from the chart's memo when this configuration took these transitions before."""
    run.microsteps += 1
    if run.microsteps > MAX_MICROSTEPS:
        raise StepFailure(
            f"more than {MAX_MICROSTEPS} microsteps in one step: an 'always' loop never settles"
        )
    plans = plans_of(run.chart)
    key = (frozenset(run.config), tuple(t.order for t in enabled))
    plan = plans.microsteps.get(key)
    if plan is not None:
        exit_states(run, plan.exits)
        _take_transitions(run, enabled, plan.owners)
        enter_states(run, plan.entries)
        return
    run.history_consulted = False
    exits = tuple(sorted(compute_exit_set(run, enabled), key=_exit_key(run.chart)))
    exit_states(run, exits)  # records history, which a history target's entry set reads
    owners = tuple(_transition_owner(run, t) for t in enabled)
    entries = entry_order(run, enabled)
    if not run.history_consulted:
        remember(plans.microsteps, key, MicrostepPlan(exits, owners, entries))
    _take_transitions(run, enabled, owners)
    enter_states(run, entries)


def _take_transitions(
    run: MacrostepRun, enabled: list[Transition], owners: tuple[str, ...]
) -> None:
    for transition, owner in zip(enabled, owners, strict=True):
        run.taken.append((transition.source, transition.targets))
        run.execute(transition.actions, owner)


def stabilize(run: MacrostepRun) -> None:
    """Take eventless transitions until none is enabled, then raised done events, in order."""
    while run.status == "active":
        enabled = select_transitions(run, None)
        if not enabled:
            if not run.internal_queue:
                return
            enabled = select_transitions(run, run.internal_queue.popleft())
            if not enabled:
                continue
        microstep(run, enabled)


def compute_exit_set(run: MacrostepRun, transitions: list[Transition]) -> set[str]:
    exits: set[str] = set()
    for transition in transitions:
        if transition.targets:
            exits |= run.config & _descendants(run.chart, transition_domain(run, transition))
    return exits


def _descendants(chart: Chart, ancestor: str) -> frozenset[str]:
    """Every state strictly inside ``ancestor``, memoized per chart."""
    key = ("descendants", ancestor)
    found: frozenset[str] | None = chart.memo.get(key)
    if found is None:
        found = frozenset(s for s in chart.states if paths.is_descendant(s, ancestor))
        chart.memo[key] = found
    return found


def transition_domain(run: MacrostepRun, transition: Transition) -> str:
    """The innermost compound state (or root) that the transition stays inside.

    Memoized per chart unless a target is a history state (then it depends on the record).
    """
    key = ("domain", transition.source, transition.event, transition.order)
    cached: str | None = run.chart.memo.get(key)
    if cached is not None:
        return cached
    domain = _compute_domain(run, transition)
    if not any(run.chart.states[t].is_history for t in transition.targets):
        run.chart.memo[key] = domain
    return domain


def _compute_domain(run: MacrostepRun, transition: Transition) -> str:
    targets = effective_targets(run, transition)
    source = transition.source
    if (
        transition.internal
        and run.chart.states[source].is_compound
        and all(paths.is_descendant(t, source) for t in targets)
    ):
        return source
    return find_lcca(run.chart, [source, *targets])


def find_lcca(chart: Chart, states: list[str]) -> str:
    """Least common compound ancestor (SCXML findLCCA): parallel ancestors are skipped."""
    head, rest = states[0], states[1:]
    for ancestor in chart.states[head].ancestors:
        node = chart.states[ancestor]
        if (node.is_compound or ancestor == ROOT) and all(
            paths.is_descendant(s, ancestor) for s in rest
        ):
            return ancestor
    return ROOT


def effective_targets(run: MacrostepRun, transition: Transition) -> list[str]:
    """Targets with history states replaced by what they restore."""
    found: list[str] = []
    for target in transition.targets:
        node = run.chart.states[target]
        if node.is_history:
            run.history_consulted = True
            found.extend(run.history.get(target) or _history_default(run.chart, node))
        else:
            found.append(target)
    return found


def _history_default(chart: Chart, node: StateNode) -> tuple[str, ...]:
    if node.history_default:
        return node.history_default
    parent = chart.states[node.parent or ROOT]
    return (parent.initial,) if parent.initial else ()


def _transition_owner(run: MacrostepRun, transition: Transition) -> str:
    """Dispatches made by a transition belong to the outermost state it enters (so leaving
    that state makes them stale); a targetless transition's to its source."""
    if not transition.targets:
        return transition.source
    domain = transition_domain(run, transition)
    target = effective_targets(run, transition)[0]
    for path in (target, *run.chart.states[target].ancestors):
        if run.chart.states[path].parent == domain:
            return path
    return transition.source


# -- SCXML: exiting and entering -------------------------------------------------------------


def exit_states(run: MacrostepRun, ordered: Sequence[str]) -> None:
    """Exit deepest first: record history, run exit actions, cancel owned timers/dispatches."""
    chart = run.chart
    leaving = set(ordered)
    for path in leaving & _history_parents(chart):
        for child in chart.states[path].children:
            history = chart.states[child]
            if history.is_history:
                run.history[child] = _recorded(run, path, deep=history.history_type == "deep")
    for path in ordered:
        node = chart.states[path]
        if not node.exit.is_empty:
            run.execute(node.exit, next(a for a in node.ancestors if a not in leaving))
        run.cancel_owned_by(path)
        run.config.discard(path)


def _history_parents(chart: Chart) -> frozenset[str]:
    """States with a history child (exiting them records history), per chart."""
    found: frozenset[str] | None = chart.memo.get("history_parents")
    if found is None:
        found = frozenset(node.parent or ROOT for node in chart.states.values() if node.is_history)
        chart.memo["history_parents"] = found
    return found


def _recorded(run: MacrostepRun, parent: str, deep: bool) -> tuple[str, ...]:
    chart = run.chart
    if deep:
        found = (
            s for s in run.config if chart.states[s].is_atomic and paths.is_descendant(s, parent)
        )
    else:
        found = (s for s in run.config if chart.states[s].parent == parent)
    return tuple(sorted(found, key=lambda s: chart.states[s].order))


def entry_order(run: MacrostepRun, transitions: list[Transition]) -> tuple[str, ...]:
    chart = run.chart
    return tuple(sorted(compute_entry_set(run, transitions), key=lambda s: chart.states[s].order))


def enter_states(run: MacrostepRun, ordered: Sequence[str]) -> None:
    """Enter in document order: run entry actions, arm timers, raise done events."""
    chart = run.chart
    for path in ordered:
        node = chart.states[path]
        run.config.add(path)
        run.execute(node.entry, path)
        for timer in node.after:
            run.arm(path, timer)
        if node.is_final:
            _on_final_entered(run, node)
            if run.status != "active":
                return


def _on_final_entered(run: MacrostepRun, node: StateNode) -> None:
    chart = run.chart
    parent = node.parent or ROOT
    if parent == ROOT:
        run.finish("failed" if node.status == "failed" else "done", node.path)
        return
    run.internal_queue.append(f"$done.{parent}")
    grandparent = chart.states[parent].parent
    if grandparent is not None and chart.states[grandparent].is_parallel:
        regions = [c for c in chart.states[grandparent].children if not chart.states[c].is_history]
        if all(_in_final_state(run, region) for region in regions):
            run.internal_queue.append(f"$done.{grandparent}")


def _in_final_state(run: MacrostepRun, path: str) -> bool:
    node = run.chart.states[path]
    if node.is_compound:
        return any(run.chart.states[c].is_final and c in run.config for c in node.children)
    if node.is_parallel:
        regions = [c for c in node.children if not run.chart.states[c].is_history]
        return all(_in_final_state(run, c) for c in regions)
    return False


def compute_entry_set(run: MacrostepRun, transitions: list[Transition]) -> set[str]:
    to_enter: set[str] = set()
    for transition in transitions:
        if not transition.targets:
            continue
        for target in transition.targets:
            _add_descendants(run, target, to_enter)
        domain = transition_domain(run, transition)
        for target in effective_targets(run, transition):
            _add_ancestors(run, target, domain, to_enter)
    return to_enter


def _add_descendants(run: MacrostepRun, path: str, to_enter: set[str]) -> None:
    chart = run.chart
    node = chart.states[path]
    if node.is_history:
        run.history_consulted = True
        parent = node.parent or ROOT
        restored = run.history.get(path) or _history_default(chart, node)
        for state in restored:
            _add_descendants(run, state, to_enter)
        for state in restored:
            _add_ancestors(run, state, parent, to_enter)
        return
    to_enter.add(path)
    if node.is_compound and node.initial:
        _add_descendants(run, node.initial, to_enter)
        _add_ancestors(run, node.initial, path, to_enter)
    elif node.is_parallel:
        _enter_missing_regions(run, node, to_enter)


def _add_ancestors(run: MacrostepRun, path: str, until: str, to_enter: set[str]) -> None:
    chart = run.chart
    for ancestor in chart.states[path].ancestors:
        if ancestor in (until, ROOT):
            return
        to_enter.add(ancestor)
        node = chart.states[ancestor]
        if node.is_parallel:
            _enter_missing_regions(run, node, to_enter)


def _enter_missing_regions(run: MacrostepRun, node: StateNode, to_enter: set[str]) -> None:
    for region in node.children:
        if run.chart.states[region].is_history:
            continue
        if not any(paths.is_descendant(s, region) or s == region for s in to_enter):
            _add_descendants(run, region, to_enter)


# -- configuration helpers -----------------------------------------------------------------


def full_configuration(chart: Chart, atomic: tuple[str, ...]) -> set[str]:
    """Active states with their ancestors (and the root): a new set, memoized per chart."""
    plans = plans_of(chart)
    known = plans.full_configurations.get(atomic)
    if known is None:
        known = frozenset({ROOT, *atomic, *(a for p in atomic for a in chart.states[p].ancestors)})
        remember(plans.full_configurations, atomic, known)
    return set(known)


def atomic_configuration(chart: Chart, config: set[str]) -> tuple[str, ...]:
    """The stored form of a configuration: its atomic states, sorted (memoized per chart)."""
    plans = plans_of(chart)
    frozen = frozenset(config)
    known = plans.atomic_configurations.get(frozen)
    if known is None:
        known = tuple(sorted(s for s in config if s != ROOT and chart.states[s].is_atomic))
        remember(plans.atomic_configurations, frozen, known)
    return known


def _active_atomic(chart: Chart, config: set[str]) -> list[str]:
    states = chart.states
    atomic = [s for s in config if s != ROOT and states[s].is_atomic]
    if len(atomic) > 1:
        atomic.sort(key=lambda s: states[s].order)
    return atomic


def _exit_key(chart: Chart) -> Callable[[str], int]:
    """Exit order: reverse document order, so descendants leave before their ancestors."""
    return lambda s: -chart.states[s].order


# -- events ----------------------------------------------------------------------------------


def _is_result(chart: Chart, event_type: str) -> bool:
    base, dot, suffix = event_type.rpartition(".")
    return bool(dot) and f".{suffix}" in RESULT_SUFFIXES and base in chart.dispatch_names


def _matching_dispatch(snapshot: Snapshot, event: Event) -> PendingDispatch | None:
    """The pending dispatch a result answers: by dispatch id, else the oldest of that name."""
    name = event.type.rpartition(".")[0]
    for pending in snapshot.pending:
        if pending.name != name:
            continue
        if event.dispatch_id is None or pending.dispatch_id == event.dispatch_id:
            return pending
    return None


def _timer_matches(timer_id: str, timer_event: str, event: Event) -> bool:
    if event.timer_id is not None:
        return timer_id == event.timer_id
    return timer_event == event.type


def _envelope_problem(event: Event) -> str | None:
    if not event.event_id:
        return "event_id is empty"
    if not event.type:
        return "event type is empty"
    try:
        parse_instant_ms(event.occurred_at)
    except (ValueError, TypeError, OverflowError):
        return f"occurred_at is not an ISO-8601 instant: {event.occurred_at!r}"
    return None


def _plain_payload_problem(chart: Chart, event: Event) -> str | None:
    if not event.payload:
        return None
    problem = json_problem(event.payload, chart.limits.json_depth)
    return f"payload: {problem}" if problem else None


def _payload_problem(chart: Chart, event: Event) -> str | None:
    validator = chart.validators.get(event.type)
    if validator is None:
        return None
    error = next(iter(validator.iter_errors(dict(event.payload))), None)
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "payload"
    return f"payload of {event.type} fails its declared schema at {where}: {error.message}"


def _check_data_schema(chart: Chart, run: MacrostepRun) -> None:
    validator = chart.validators.get("$data")
    if validator is None:
        return
    error = next(iter(validator.iter_errors(run.data)), None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "data"
        raise StepFailure(f"data fails data_schema at {where}: {error.message}")
