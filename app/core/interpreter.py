"""The reducer: ``step(chart, snapshot, event) -> StepResult(snapshot, commands, trace)``.

It follows the SCXML algorithm (as XState does): select transitions, remove conflicts,
microstep (exit set, transition content, entry set), then eventless ``always`` transitions
and raised done events until stable. Pure: no clock, no I/O, no randomness; time comes
from ``event.occurred_at``. Every run-time error becomes status ``failed``.

This module holds ``step`` and its outcomes (applied, ignored, duplicate, rejected,
failed); the algorithm is :mod:`app.core.scxml`, reached through the per-chart caches of
:mod:`app.core.plans`; the input checks are :mod:`app.core.validation`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from app.core import scxml
from app.core.composition import child_cancels, final_answer, refused_start
from app.core.durations import parse_instant_ms
from app.core.errors import StepFailure
from app.core.model import NO_ACTIONS, ROOT, Chart, Transition
from app.core.plans import ChartPlans, plans_of
from app.core.run import MAX_MICROSTEPS, MacrostepRun, compensation_commands
from app.core.snapshot import PendingDispatch, Snapshot, Timer
from app.core.validation import (
    check_data_schema,
    envelope_problem,
    payload_problem,
    plain_payload_problem,
)
from app.spi.envelopes import CANCEL, RESULT_SUFFIXES, START, TIMER_PREFIX, ChildRun, Command, Event
from app.spi.limits import DEFAULT_LIMITS

Outcome = Literal["applied", "ignored", "duplicate", "rejected", "failed"]


@dataclass(frozen=True, slots=True)
class StepTrace:
    """What a step did, for the journal, the simulator and debugging."""

    outcome: Outcome
    event_type: str
    seq: int | None
    reason: str | None = None
    transitions: tuple[tuple[str, tuple[str, ...]], ...] = ()
    raised: tuple[str, ...] = ()  # events the step raised, in order (RSS v1.1 ``raise``)

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
    # Events for other instances (RSS v1.1 ``invoke``): child starts and cancels, and the
    # answer to this instance's parent when the step ended it or refused to start it.
    messages: tuple[Event, ...] = ()


def with_parent_answer(
    before: Snapshot | None,
    event: Event,
    result: StepResult,
    max_bytes: int = DEFAULT_LIMITS.result_bytes,
) -> StepResult:
    """``result`` with the answer its instance owes a parent: ``.done``/``.failed`` when the
    step ended a child, ``.failed`` when it refused a child's ``$start``."""
    trace = result.trace
    reply = None
    if trace.outcome == "rejected" or (trace.ignored and event.type == START):
        reply = refused_start(event, trace.reason or trace.outcome)
    elif trace.accepted:
        reply = final_answer(before, result.snapshot, event, max_bytes)
    if reply is None:
        return result
    return replace(result, messages=(*result.messages, reply))


def step(chart: Chart, snapshot: Snapshot | None, event: Event) -> StepResult:
    """Apply one event to one instance. Never raises for a valid chart; a malformed envelope
    (bad time, empty id or type, a payload that is not plain JSON within the chart's
    ``json_depth``) is rejected with the reason, like any invalid event.

    A child's step that ends it answers its parent, and a refused child ``$start`` answers
    ``.failed`` (:func:`with_parent_answer`, applied where those outcomes are made)."""
    problem = envelope_problem(event) or plain_payload_problem(chart, event)
    if problem:
        return _rejected(snapshot, event, problem)
    if chart.internal_events and event.type in chart.internal_events:
        reason = f"'{event.type}' is an internal event of {chart.workflow} (raised by the chart)"
        return _rejected(snapshot, event, reason)
    if snapshot is None:
        if event.type != START:
            return _rejected(None, event, "no such instance: the first event must be $start")
        problem = payload_problem(chart, event) or _child_start_problem(chart, event)
        return _rejected(None, event, problem) if problem else _start(chart, event)
    if event.event_id in snapshot.recent_event_ids or (
        event.type == START and _is_own_start(snapshot, event)
    ):
        return StepResult(snapshot, (), StepTrace("duplicate", event.type, None, "already applied"))
    problem = payload_problem(chart, event)
    if problem:
        return _rejected(snapshot, event, problem)
    base = snapshot.with_delivery(event.event_id, event.occurred_at)
    if event.type == START:  # the instance exists, ended or not: a child start is refused
        refused = _ignored(base, event, "an instance with that id already exists")
        return with_parent_answer(snapshot, event, refused, chart.limits.result_bytes)
    if not snapshot.is_active:
        return _ignored(base, event, f"instance is {snapshot.status}")
    if event.type == CANCEL and event.parent is not None and event.parent != snapshot.parent:
        return _ignored(base, event, "a $cancel from an instance that is not this one's parent")
    return _deliver(chart, base, event)


def _child_start_problem(chart: Chart, event: Event) -> str | None:
    """A child's input failing its ``data_schema`` is a refused start (answered ``.failed``
    with status ``rejected``), not a failed instance; a plain ``$start`` keeps v1's
    behaviour (the instance fails)."""
    if event.parent is None:
        return None
    try:
        check_data_schema(chart, {**chart.initial_data, **event.payload})
    except StepFailure as failure:
        return str(failure)
    return None


def _is_own_start(snapshot: Snapshot, event: Event) -> bool:
    """The ``$start`` that created this child, sent again by its parent (however long ago:
    the de-duplication window may have moved past it)."""
    parent = snapshot.parent
    return event.type == START and parent is not None and parent.dispatch_id == event.event_id


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
        parent=event.parent,
    )
    run = MacrostepRun(chart, base, event, {ROOT})
    run.data = data
    initial = Transition(
        0, ROOT, None, (chart.root.initial or "",), None, None, NO_ACTIONS, False, chart.root.line
    )
    plans = plans_of(chart)
    return _run_macrostep(plans, base, run, lambda: _initial_entry(plans, run, initial))


def _deliver(chart: Chart, base: Snapshot, event: Event) -> StepResult:
    plans = plans_of(chart)
    run = MacrostepRun(chart, base, event, plans.full_configuration(chart, base.configuration))
    if event.type == CANCEL:
        return _run_macrostep(plans, base, run, lambda: _cancel(run))
    if event.type.startswith(TIMER_PREFIX):
        timer = next((t for t in base.timers if _timer_matches(t, event)), None)
        if timer is None:
            return _ignored(base, event, "timer is no longer armed")
        run.disarm(timer)
    elif _is_result(chart, event.type):
        if event.timer_id is not None:  # an invoke's timeout, fired by its timer
            timer = next((t for t in base.timers if t.id == event.timer_id), None)
            if timer is None:
                return _ignored(base, event, "timer is no longer armed")
            run.disarm(timer)
        pending = _matching_dispatch(base, event)
        if pending is None:
            return _ignored(base, event, "result for a dispatch that is no longer pending")
        run.settle(pending, event.type)
    return _run_macrostep(plans, base, run, lambda: _handle_external(plans, run, event.type))


# -- the macrostep ---------------------------------------------------------------------------


def _handle_external(plans: ChartPlans, run: MacrostepRun, event_type: str) -> bool:
    enabled = plans.select_transitions(run, event_type)
    if not enabled:
        return False
    _microstep(plans, run, enabled)
    _stabilize(plans, run)
    return True


def _initial_entry(plans: ChartPlans, run: MacrostepRun, initial: Transition) -> bool:
    scxml.enter_states(run, scxml.entry_order(run, [initial]))
    _stabilize(plans, run)
    return True


def _cancel(run: MacrostepRun) -> bool:
    scxml.exit_states(run, sorted(run.config - {ROOT}, key=scxml.exit_key(run.chart)))
    run.finish("cancelled", None)
    return True


def _stabilize(plans: ChartPlans, run: MacrostepRun) -> None:
    """Take eventless transitions until none is enabled, then raised done events, in order
    (the inner loop of SCXML's mainEventLoop)."""
    while run.status == "active":
        enabled = plans.select_transitions(run, None)
        if not enabled:
            if not run.internal_queue:
                return
            enabled = plans.select_transitions(run, run.take_internal())
            if not enabled:
                continue
        _microstep(plans, run, enabled)


def _microstep(plans: ChartPlans, run: MacrostepRun, enabled: list[Transition]) -> None:
    run.microsteps += 1
    if run.microsteps > MAX_MICROSTEPS:
        raise StepFailure(
            f"more than {MAX_MICROSTEPS} microsteps in one step: an 'always' loop never settles"
        )
    plans.microstep(run, enabled)


def _run_macrostep(
    plans: ChartPlans, base: Snapshot, run: MacrostepRun, body: Callable[[], bool]
) -> StepResult:
    """Run ``body``; turn a run-time error into status ``failed`` keeping the last valid state."""
    try:
        changed = body()
        if changed:
            if run.entered and run.status == "active":
                run.start_invocations()
            check_data_schema(run.chart, run.data)
    except StepFailure as failure:
        return _failed(run.chart, base, run, str(failure))
    if not changed:
        # Settling a result or consuming a timer is still recorded, but nothing else moves
        # (a timed-out child is still cancelled).
        quiet = replace(
            base,
            timers=run.timers,
            pending=run.pending,
            completed_effects=run.completed,
            children=run.children,
        )
        ignored = _ignored(quiet, run.event, "no transition selected")
        return replace(ignored, messages=tuple(run.messages)) if run.messages else ignored
    return _applied(plans, base, run)


# -- outcomes ------------------------------------------------------------------------------


def _applied(plans: ChartPlans, base: Snapshot, run: MacrostepRun) -> StepResult:
    chart = run.chart
    commands = list(run.commands)
    if run.status in ("failed", "cancelled"):
        commands += compensation_commands(chart, base.instance_id, base.seq, run.completed)
    configuration = (
        plans.atomic_configuration(chart, run.config) if run.status != "cancelled" else ()
    )
    # One positional constructor call (fields in declaration order) instead of
    # dataclasses.replace or keywords: this runs on every applied step.
    snapshot = Snapshot(
        base.workflow,
        base.version,
        base.instance_id,
        run.status,
        configuration,
        run.data,
        base.seq,
        run.history,
        run.timers,
        run.pending,
        run.completed,
        base.recent_event_ids,
        base.updated_at,
        _final_reason(run),
        base.parent,
        run.children,
        run.output,
    )
    raised = tuple(run.raised) if run.raised else ()
    trace = StepTrace("applied", run.event.type, base.seq, None, tuple(run.taken), raised)
    messages = tuple(run.messages) if run.messages else ()
    applied = StepResult(snapshot, tuple(commands), trace, None, messages)
    if base.parent is None or run.status == "active":
        return applied
    return with_parent_answer(None, run.event, applied, chart.limits.result_bytes)  # a child ended


def _failed(chart: Chart, base: Snapshot, run: MacrostepRun, reason: str) -> StepResult:
    """Discard the step's changes; keep the last valid data and configuration; compensate;
    cancel the children that were running before the step."""
    completed = run.completed
    commands = compensation_commands(chart, base.instance_id, base.seq, completed)
    snapshot = replace(
        base,
        status="failed",
        timers=(),
        pending=(),
        completed_effects=tuple(completed),
        reason=reason,
        children=cancelled_children(base),
    )
    trace = StepTrace("failed", run.event.type, base.seq, reason)
    cancels = child_cancels(run.event, base.pending)
    failed = StepResult(snapshot, tuple(commands), trace, messages=tuple(cancels))
    return with_parent_answer(None, run.event, failed, chart.limits.result_bytes)


def cancelled_children(snapshot: Snapshot) -> tuple[ChildRun, ...]:
    """The children list once every running child was cancelled."""
    running = {p.dispatch_id for p in snapshot.pending if p.kind == "workflow"}
    return tuple(
        replace(c, status="cancelled") if c.dispatch_id in running else c for c in snapshot.children
    )


def _ignored(base: Snapshot, event: Event, reason: str) -> StepResult:
    return StepResult(base, (), StepTrace("ignored", event.type, base.seq, reason))


def _rejected(snapshot: Snapshot | None, event: Event, reason: str) -> StepResult:
    rejected = StepResult(snapshot, (), StepTrace("rejected", event.type, None, reason))
    return with_parent_answer(snapshot, event, rejected) if event.parent is not None else rejected


def _final_reason(run: MacrostepRun) -> str | None:
    if run.status == "failed" and run.final_state:
        return f"reached final state '{run.final_state}' (status failed)"
    if run.status == "cancelled":
        return "cancelled"
    return None


# -- events ----------------------------------------------------------------------------------


def _is_result(chart: Chart, event_type: str) -> bool:
    base, dot, suffix = event_type.rpartition(".")
    return bool(dot) and f".{suffix}" in RESULT_SUFFIXES and base in chart.dispatch_names


def _matching_dispatch(snapshot: Snapshot, event: Event) -> PendingDispatch | None:
    """The pending dispatch a result answers: by dispatch id, else the oldest effect or
    compute of that name. A child workflow's answer always carries its dispatch id: one
    without it could settle the invoke and leave the child running uncancelled."""
    name = event.type.rpartition(".")[0]
    for pending in snapshot.pending:
        if pending.name != name:
            continue
        if pending.dispatch_id == event.dispatch_id or (
            event.dispatch_id is None and pending.kind != "workflow"
        ):
            return pending
    return None


def _timer_matches(timer: Timer, event: Event) -> bool:
    """The armed timer a firing names (by id), or, for a firing without one, the timer of
    that event type already due: an outside ``$after`` never fires a timer early."""
    if event.timer_id is not None:
        return timer.id == event.timer_id
    return timer.event == event.type and parse_instant_ms(event.occurred_at) >= parse_instant_ms(
        timer.deadline
    )
