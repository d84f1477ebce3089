"""The mutable scratchpad of one macrostep, and the executable content it runs.

A :class:`MacrostepRun` is created per event by :mod:`app.core.interpreter`, never shared
and never stored: the snapshot it starts from is frozen and left untouched.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from app.core.composition import child_cancels, child_start
from app.core.durations import format_duration, format_instant, parse_instant_ms
from app.core.errors import StepFailure
from app.core.expressions import Expr, to_json_value
from app.core.model import Actions, AfterTimer, Chart, DispatchSpec, InvokeSpec, RaiseSpec
from app.core.snapshot import (
    CHILD_WINDOW,
    CompletedEffect,
    PendingDispatch,
    Snapshot,
    Timer,
)
from app.spi.envelopes import (
    ChildRun,
    Command,
    Event,
    InstanceStatus,
    JsonObject,
    ParentRef,
    RetryPolicy,
    dispatch_deadline_ms,
    instance_key,
)

MAX_MICROSTEPS = 1_000
MAX_RAISED = 1_000  # raised events in one step: a raise loop fails the step like `always`
_DEFAULT_RETRY = RetryPolicy()


class MacrostepRun:
    """Working state for one event: configuration, data, timers, pending work, commands."""

    # Slots: one of these is built per event, and its attributes are read in every microstep.
    __slots__ = (
        "_event_vars",
        "_ids",
        "chart",
        "children",
        "commands",
        "completed",
        "config",
        "data",
        "entered",
        "evaluations",
        "event",
        "final_state",
        "history",
        "instance_id",
        "internal_queue",
        "json_depth",
        "messages",
        "microsteps",
        "now_ms",
        "output",
        "pending",
        "raised",
        "seq",
        "status",
        "taken",
        "timers",
    )

    def __init__(self, chart: Chart, base: Snapshot, event: Event, full_config: set[str]) -> None:
        self.chart = chart
        self.event = event
        self.seq = base.seq
        self.instance_id = base.instance_id
        self.config = full_config
        self.data: Mapping[str, Any] = base.data
        # Copy on write: most steps change none of these, so the snapshot's own tuples (and
        # history mapping) are kept, and replaced by new ones when something changes.
        self.history: Mapping[str, tuple[str, ...]] = base.history
        self.timers: tuple[Timer, ...] = base.timers
        self.pending: tuple[PendingDispatch, ...] = base.pending
        self.completed: tuple[CompletedEffect, ...] = base.completed_effects
        self.commands: list[Command] = []
        # Events for other instances: child starts and cancels (the child's answer is added
        # by the interpreter when the step ends an instance that has a parent).
        self.messages: list[Event] = []
        self.children = base.children  # a new tuple when a child starts or ends
        self.output: JsonObject | None = None
        self.entered: list[str] = []  # states entered with an `invoke`, started at the end
        # SCXML's internal event queue: raised events and done events, with their payloads.
        self.internal_queue: deque[tuple[str, JsonObject]] = deque()
        self.raised: list[str] = []
        self.status: InstanceStatus = "active"
        self.final_state: str | None = None
        self.now_ms = parse_instant_ms(event.occurred_at)
        self.taken: list[tuple[str, tuple[str, ...]]] = []
        self.microsteps = 0
        self.evaluations = 0  # guards and `when`s evaluated, held to limits.evaluations_per_step
        self.json_depth = chart.limits.json_depth
        self._ids = 0
        self._event_vars = {
            "type": event.type,
            "payload": event.payload,
            "id": event.event_id,
            "occurred_at": event.occurred_at,
        }

    # -- identifiers and variables ---------------------------------------------------------

    def next_id(self, prefix: str = "") -> str:
        """Deterministic ids: the same step of the same instance always yields the same ids."""
        self._ids += 1
        return f"{self.chart.workflow}:{self.instance_id}:{self.seq}:{prefix}{self._ids}"

    @property
    def event_vars(self) -> dict[str, Any]:
        """The event as guards and CEL see it: type, payload, id, occurred_at."""
        return self._event_vars

    def variables(self) -> dict[str, Any]:
        return {"data": self.data, "event": self._event_vars}

    def in_state(self, path: str) -> bool:
        """CEL's ``in_state()``: is ``path`` active in the configuration as it stands now."""
        return path in self.config

    def evaluate(self, expr: Expr) -> Any:
        return expr.evaluate(self.variables(), self.in_state)

    def evaluate_map(self, exprs: tuple[tuple[str, Expr], ...], where: str) -> JsonObject:
        """A ``{key: CEL}`` mapping (an input, a payload, an output), as plain JSON."""
        variables = self.variables()
        return {
            key: to_json_value(
                expr.evaluate(variables, self.in_state), f"{where}.{key}", self.json_depth
            )
            for key, expr in exprs
        }

    def take_internal(self) -> str:
        """The next internal event; the expressions of its microstep see it as ``event``."""
        name, payload = self.internal_queue.popleft()
        self._event_vars = {**self._event_vars, "type": name, "payload": payload}
        return name

    # -- executable content ----------------------------------------------------------------

    def execute(self, actions: Actions, owner: str) -> None:
        """Run assignments, then raised events, then effects, then computes, in document
        order."""
        for assignment in actions.assign:
            where = f"assign {'.'.join(assignment.path)}"
            value = self.evaluate(assignment.expr)
            value = to_json_value(value, where, self.json_depth)
            self.data = set_path(self.data, assignment.path, value)
        if actions.raises:
            for raised in actions.raises:
                self.raise_event(raised)
        for spec in actions.effects:
            self.dispatch(spec, owner)
        for spec in actions.computes:
            self.dispatch(spec, owner)

    def dispatch(self, spec: DispatchSpec, owner: str) -> None:
        payload = self._dispatch_input(spec)
        command = Command(
            command_id=self.next_id(),
            workflow_type=self.chart.workflow,
            instance_id=self.instance_id,
            seq=self.seq,
            kind=spec.kind,
            name=spec.name,
            mode=spec.mode,
            input=payload,
            retry=spec.retry,
            timeout_ms=spec.timeout_ms,
            compensate=spec.compensate,
            queue=spec.queue,
        )
        self.commands.append(command)
        if spec.mode == "await":
            self._add_pending(
                PendingDispatch(
                    dispatch_id=command.command_id,
                    name=spec.name,
                    kind=spec.kind,
                    mode=spec.mode,
                    attempt=1,
                    owner=owner,
                    compensate=spec.compensate,
                    input=payload if spec.compensate else None,
                    queue=spec.queue,
                )
            )
            self._arm_deadline(spec, command.command_id, owner)

    def _arm_deadline(self, spec: DispatchSpec, dispatch_id: str, owner: str) -> None:
        """A worker answers every command it runs, but nobody may serve the command's queue:
        a deadline timer answers ``<name>.timeout`` then, so no instance waits forever. Its
        id derives from the dispatch's, leaving the step's id counter (and every other id)
        as it was."""
        delay = dispatch_deadline_ms(spec.retry, spec.timeout_ms or 0)
        deadline = self._deadline(delay, f"{spec.name}.timeout")
        event = f"{spec.name}.timeout"
        self._add_timer(Timer(f"{dispatch_id}:deadline", deadline, event, owner, -1, dispatch_id))

    def _dispatch_input(self, spec: DispatchSpec) -> JsonObject:
        if spec.input is None:
            return dict(self.data)
        return self.evaluate_map(spec.input, f"{spec.kind} {spec.name} input")

    def raise_event(self, spec: RaiseSpec) -> None:
        """``raise``: queue an internal event for this macrostep (after ``always`` settles)."""
        if len(self.raised) >= MAX_RAISED:
            raise StepFailure(f"more than {MAX_RAISED} raised events in one step: a raise loop")
        payload = self.evaluate_map(spec.payload, f"raise {spec.event} payload")
        self.internal_queue.append((spec.event, payload))
        self.raised.append(spec.event)

    # -- child workflows (invoke) ----------------------------------------------------------

    def start_invocations(self) -> None:
        """Start the children of the states entered in this macrostep and still active at its
        end (SCXML starts invokes once the macrostep settles), in entry order."""
        states = self.chart.states
        for path in dict.fromkeys(self.entered):
            if path in self.config:
                for spec in states[path].invoke:
                    self.start_child(spec, path)
        self.entered.clear()

    def start_child(self, spec: InvokeSpec, owner: str) -> None:
        dispatch_id = self.next_id()
        child_id = self._child_id(spec)
        what = f"invoke {spec.name} input"
        payload = self.evaluate_map(spec.input, what) if spec.input is not None else dict(self.data)
        parent = ParentRef(self.chart.workflow, self.instance_id, spec.name, dispatch_id)
        self.messages.append(
            child_start(self.event, parent, spec.workflow, child_id, payload, spec.version)
        )
        self._add_pending(
            PendingDispatch(
                dispatch_id,
                spec.name,
                "workflow",
                "await",
                1,
                owner,
                child_workflow=spec.workflow,
                child_id=child_id,
            )
        )
        if spec.timeout_ms is not None:
            deadline = self._deadline(spec.timeout_ms, f"{spec.name}.timeout")
            timer = Timer(
                self.next_id("t"), deadline, f"{spec.name}.timeout", owner, -1, dispatch_id
            )
            self._add_timer(timer)
        child = ChildRun(spec.name, spec.workflow, child_id, dispatch_id, "running")
        self.children = (*self.children, child)[-CHILD_WINDOW:]

    def _child_id(self, spec: InvokeSpec) -> str:
        """The child's id (CEL ``id``, else ``<parent id>.<name>.<seq>``); its key must fit
        the key limit, or the child's ``$start`` would be refused before any answer."""
        if spec.id is None:
            value: Any = f"{self.instance_id}.{spec.name}.{self.seq}"
        else:
            value = self.evaluate(spec.id)
        if not isinstance(value, str) or not value:
            source = spec.id.source if spec.id is not None else "(default)"
            raise StepFailure(
                f"invoke {spec.name}: id {source!r} gave {value!r}, not a non-empty string"
            )
        key_bytes = len(instance_key(spec.workflow, value).encode())
        if key_bytes > self.chart.limits.key_bytes:
            raise StepFailure(
                f"invoke {spec.name}: the child's key would be {key_bytes} bytes, over the "
                f"limit of {self.chart.limits.key_bytes} (OMNINODE_MAX_KEY_BYTES)"
            )
        return value

    def _mark_child(self, dispatch_id: str, status: str) -> None:
        self.children = tuple(
            ChildRun(c.name, c.workflow, c.instance_id, c.dispatch_id, status)
            if c.dispatch_id == dispatch_id
            else c
            for c in self.children
        )

    def drop_pending(self, dropped: Sequence[PendingDispatch]) -> None:
        """Pending work forgotten unanswered (the caller removed it from ``pending``): its
        children get ``$cancel`` and are marked cancelled."""
        for cancel in child_cancels(self.event, dropped):
            self.messages.append(cancel)
        for pending in dropped:
            self._disarm_dispatch(pending.dispatch_id)
            if pending.kind == "workflow":
                self._mark_child(pending.dispatch_id, "cancelled")

    # -- timers and pending dispatches -----------------------------------------------------

    def _deadline(self, delay_ms: int, what: str) -> str:
        try:
            return format_instant(self.now_ms + delay_ms)
        except (OverflowError, ValueError) as exc:
            raise StepFailure(
                f"timer deadline of {what} ({format_duration(delay_ms)} after "
                f"{self.event.occurred_at}) is past year 9999"
            ) from exc

    def arm(self, state: str, timer: AfterTimer) -> None:
        deadline = self._deadline(timer.delay_ms, timer.event)
        self._add_timer(Timer(self.next_id("t"), deadline, timer.event, state, timer.index))

    def _add_pending(self, pending: PendingDispatch) -> None:
        self.pending = (*self.pending, pending)

    def _add_timer(self, timer: Timer) -> None:
        self.timers = (*self.timers, timer)

    def _add_completed(self, done: CompletedEffect) -> None:
        self.completed = (*self.completed, done)

    def disarm(self, timer: Timer) -> None:
        self.timers = tuple(t for t in self.timers if t is not timer)

    def _disarm_dispatch(self, dispatch_id: str) -> None:
        """Disarm a dispatch's timeout (an invoke's ``timeout``, a command's deadline)."""
        if self.timers and any(t.dispatch_id == dispatch_id for t in self.timers):
            self.timers = tuple(t for t in self.timers if t.dispatch_id != dispatch_id)

    def record_history(self, state: str, recorded: tuple[str, ...]) -> None:
        self.history = {**self.history, state: recorded}

    def cancel_owned_by(self, state: str) -> None:
        if self.timers and any(t.state == state for t in self.timers):
            self.timers = tuple(t for t in self.timers if t.state != state)
        if self.pending:
            stale = [p for p in self.pending if p.owner == state]
            if stale:
                self.pending = tuple(p for p in self.pending if p.owner != state)
                self.drop_pending(stale)

    def settle(self, pending: PendingDispatch, result_type: str) -> None:
        """A result arrived for ``pending``: forget it, and remember it for the saga; a
        child's answer disarms its timeout, and a timeout cancels the child."""
        self.pending = tuple(p for p in self.pending if p.dispatch_id != pending.dispatch_id)
        self._disarm_dispatch(pending.dispatch_id)
        if pending.kind == "workflow":
            outcome = result_type.rpartition(".")[2]
            if outcome == "timeout":
                self.drop_pending([pending])
            self._mark_child(pending.dispatch_id, outcome)
            return
        if result_type.endswith(".done") and pending.compensate:
            self._add_completed(
                CompletedEffect(
                    dispatch_id=pending.dispatch_id,
                    name=pending.name,
                    compensate=pending.compensate,
                    input=pending.input or {},
                    result=to_json_value(self.event.payload, "result payload", self.json_depth),
                    queue=pending.queue,
                )
            )

    def finish(self, status: InstanceStatus, final_state: str | None) -> None:
        self.status = status
        self.final_state = final_state
        self.timers = ()
        self.drop_pending(self.pending)
        self.pending = ()
        self.internal_queue.clear()
        self.entered.clear()


def compensation_commands(
    chart: Chart, instance_id: str, seq: int, completed: Sequence[CompletedEffect]
) -> list[Command]:
    """Fire-and-forget compensations, most recently completed effect first."""
    commands = []
    for number, done in enumerate(reversed(completed), start=1):
        commands.append(
            Command(
                command_id=f"{chart.workflow}:{instance_id}:{seq}:c{number}",
                workflow_type=chart.workflow,
                instance_id=instance_id,
                seq=seq,
                kind="effect",
                name=done.compensate,
                mode="fire_and_forget",
                input={
                    "effect": done.name,
                    "dispatch_id": done.dispatch_id,
                    "input": dict(done.input),
                    "result": done.result,
                },
                retry=_DEFAULT_RETRY,
                timeout_ms=30_000,
                compensation_of=done.dispatch_id,
                queue=done.queue,
            )
        )
    return commands


def set_path(data: Mapping[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """A copy of ``data`` with ``path`` set; the input mapping is never mutated."""
    root = dict(data)
    node = root
    for depth, key in enumerate(path[:-1]):
        child = node.get(key)
        if child is None:
            child = {}
        elif not isinstance(child, Mapping):
            where = ".".join(path[: depth + 1])
            raise StepFailure(f"cannot assign data.{'.'.join(path)}: data.{where} is not a map")
        node[key] = dict(child)
        node = node[key]
    node[path[-1]] = value
    return root
