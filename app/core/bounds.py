"""The step the runtime runs: :func:`step`, held to the chart's size limits.

A snapshot over ``limits.snapshot_bytes`` (or a step whose commands carry more input than
that) would make a stored value too large for Kafka, so the step fails the instance
instead, with the reason, exactly like any other run-time error: status ``failed``, the
last valid data kept, completed effects compensated. The verdict depends only on the
chart, the snapshot and the event, so replay and the simulator, which run this same
function, reach it too. The measured JSON text is handed on (``snapshot_json``) so the
runtime does not serialize the snapshot a second time.
"""

from __future__ import annotations

from dataclasses import replace

from app.core.composition import child_cancels
from app.core.interpreter import (
    StepResult,
    StepTrace,
    cancelled_children,
    step,
    with_parent_answer,
)
from app.core.model import Chart
from app.core.run import compensation_commands
from app.core.snapshot import Snapshot, dumps
from app.spi.envelopes import Event
from app.spi.limits import canonical_json


def bounded_step(chart: Chart, snapshot: Snapshot | None, event: Event) -> StepResult:
    result = step(chart, snapshot, event)
    if result.snapshot is None or not result.trace.accepted:
        return result
    text = dumps(result.snapshot)
    problem = size_problem(chart, text, result)
    if problem is None:  # a constructor call, not dataclasses.replace: once per step
        return StepResult(result.snapshot, result.commands, result.trace, text, result.messages)
    if snapshot is None:  # a $start whose data alone is too large: no instance
        refused = StepResult(None, (), StepTrace("rejected", event.type, None, problem))
        return with_parent_answer(None, event, refused, chart.limits.result_bytes)
    if not snapshot.is_active:  # a finished instance only records the delivery
        return replace(result, snapshot_json=text)
    failed = fail_step(chart, snapshot, event, problem)
    assert failed.snapshot is not None
    return replace(failed, snapshot_json=dumps(failed.snapshot))


def size_problem(chart: Chart, text: str, result: StepResult) -> str | None:
    limit = chart.limits.snapshot_bytes
    size = len(text)  # canonical JSON escapes non-ASCII: characters are bytes
    if size > limit:
        return (
            f"the snapshot would be {size} bytes, over the limit of {limit} "
            "(OMNINODE_MAX_SNAPSHOT_BYTES)"
        )
    for message in result.messages:  # each must be accepted where it is sent, or none answers
        size = len(canonical_json(message.to_dict()))
        if size > chart.limits.event_bytes:
            return (
                f"the {message.type} to {message.key} would be {size} bytes, over the limit "
                f"of {chart.limits.event_bytes} (OMNINODE_MAX_EVENT_BYTES)"
            )
    inputs = sum(len(canonical_json(dict(c.input))) for c in result.commands)
    inputs += sum(len(canonical_json(dict(m.payload))) for m in result.messages)
    if inputs > limit:
        return (
            f"the step's commands and child events would carry {inputs} bytes of input, "
            "over the limit of "
            f"{limit} (OMNINODE_MAX_SNAPSHOT_BYTES)"
        )
    return None


def fail_step(chart: Chart, snapshot: Snapshot, event: Event, reason: str) -> StepResult:
    """``event`` delivered to an active ``snapshot`` fails it: nothing of the step is kept
    but the delivery (next seq, event id remembered); completed effects are compensated,
    running children cancelled, and a parent answered."""
    base = snapshot.with_delivery(event.event_id, event.occurred_at)
    failed = replace(
        base,
        status="failed",
        timers=(),
        pending=(),
        reason=reason,
        children=cancelled_children(base),
    )
    commands = compensation_commands(
        chart, snapshot.instance_id, base.seq, list(base.completed_effects)
    )
    trace = StepTrace("failed", event.type, base.seq, reason)
    cancels = tuple(child_cancels(event, base.pending))
    result = StepResult(failed, tuple(commands), trace, messages=cancels)
    return with_parent_answer(snapshot, event, result, chart.limits.result_bytes)
