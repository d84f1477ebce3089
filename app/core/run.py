"""The mutable scratchpad of one macrostep, and the executable content it runs.

A :class:`MacrostepRun` is created per event by :mod:`app.core.interpreter`, never shared
and never stored: the snapshot it starts from is frozen and left untouched.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from app.core.durations import format_duration, format_instant, parse_instant_ms
from app.core.errors import StepFailure
from app.core.expressions import to_json_value
from app.core.model import Actions, AfterTimer, Chart, DispatchSpec
from app.core.snapshot import CompletedEffect, PendingDispatch, Snapshot, Timer
from app.spi.envelopes import Command, Event, InstanceStatus, JsonObject, RetryPolicy

MAX_MICROSTEPS = 1_000
_DEFAULT_RETRY = RetryPolicy()


class MacrostepRun:
    """Working state for one event: configuration, data, timers, pending work, commands."""

    def __init__(self, chart: Chart, base: Snapshot, event: Event, full_config: set[str]) -> None:
        self.chart = chart
        self.event = event
        self.seq = base.seq
        self.instance_id = base.instance_id
        self.config = full_config
        self.data: Mapping[str, Any] = base.data
        self.history = dict(base.history)
        self.timers = list(base.timers)
        self.pending = list(base.pending)
        self.completed = list(base.completed_effects)
        self.commands: list[Command] = []
        self.internal_queue: deque[str] = deque()
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

    # -- executable content ----------------------------------------------------------------

    def execute(self, actions: Actions, owner: str) -> None:
        """Run assignments, then effects, then computes, in document order."""
        for assignment in actions.assign:
            where = f"assign {'.'.join(assignment.path)}"
            value = assignment.expr.evaluate(self.variables())
            value = to_json_value(value, where, self.json_depth)
            self.data = set_path(self.data, assignment.path, value)
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
        )
        self.commands.append(command)
        if spec.mode == "await":
            self.pending.append(
                PendingDispatch(
                    dispatch_id=command.command_id,
                    name=spec.name,
                    kind=spec.kind,
                    mode=spec.mode,
                    attempt=1,
                    owner=owner,
                    compensate=spec.compensate,
                    input=payload if spec.compensate else None,
                )
            )

    def _dispatch_input(self, spec: DispatchSpec) -> JsonObject:
        if spec.input is None:
            return dict(self.data)
        variables = self.variables()
        depth = self.json_depth
        return {
            key: to_json_value(
                expr.evaluate(variables), f"{spec.kind} {spec.name} input.{key}", depth
            )
            for key, expr in spec.input
        }

    # -- timers and pending dispatches -----------------------------------------------------

    def arm(self, state: str, timer: AfterTimer) -> None:
        try:
            deadline = format_instant(self.now_ms + timer.delay_ms)
        except (OverflowError, ValueError) as exc:
            raise StepFailure(
                f"timer deadline of {timer.event} ({format_duration(timer.delay_ms)} after "
                f"{self.event.occurred_at}) is past year 9999"
            ) from exc
        self.timers.append(Timer(self.next_id("t"), deadline, timer.event, state, timer.index))

    def cancel_owned_by(self, state: str) -> None:
        if not self.timers and not self.pending:
            return
        self.timers = [t for t in self.timers if t.state != state]
        self.pending = [p for p in self.pending if p.owner != state]

    def settle(self, pending: PendingDispatch, result_type: str) -> None:
        """A result arrived for ``pending``: forget it, and remember it for the saga."""
        self.pending = [p for p in self.pending if p.dispatch_id != pending.dispatch_id]
        if result_type.endswith(".done") and pending.compensate:
            self.completed.append(
                CompletedEffect(
                    dispatch_id=pending.dispatch_id,
                    name=pending.name,
                    compensate=pending.compensate,
                    input=pending.input or {},
                    result=to_json_value(self.event.payload, "result payload", self.json_depth),
                )
            )

    def finish(self, status: InstanceStatus, final_state: str | None) -> None:
        self.status = status
        self.final_state = final_state
        self.timers = []
        self.pending = []
        self.internal_queue.clear()


def compensation_commands(
    chart: Chart, instance_id: str, seq: int, completed: list[CompletedEffect]
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
