"""Events between parent and child instances (RSS v1.1 ``invoke``), as pure constructors.

A parent never reads a child's state, nor a child its parent's: everything between them is
an event. The parent's step sends the child's ``$start`` (its ``event_id`` is the invoke's
dispatch id, so a re-sent start is a duplicate for the child) and, when the invoking state
is exited before the answer, its ``$cancel``; the child's last step answers the parent with
``<name>.done`` or ``<name>.failed``, tied to the invoke by ``dispatch_id``. Every id here
derives from the dispatch id, so a step replayed after a crash sends the same events.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.core.snapshot import PendingDispatch, Snapshot
from app.spi.envelopes import CANCEL, START, Event, JsonObject, ParentRef
from app.spi.limits import DEFAULT_LIMITS, canonical_json

REJECTED = "rejected"  # the ``status`` of a ``.failed`` answer to a start the child refused


def child_start(
    cause: Event,
    parent: ParentRef,
    child_workflow: str,
    child_id: str,
    payload: JsonObject,
    version: int | None,
) -> Event:
    """The child's ``$start``, sent by the parent's step that entered the invoking state."""
    return Event(
        workflow_type=child_workflow,
        instance_id=child_id,
        type=START,
        event_id=parent.dispatch_id,
        occurred_at=cause.occurred_at,
        payload=payload,
        causation_id=cause.event_id,
        correlation_id=cause.correlation_id or cause.event_id,
        parent=parent,
        version=version,
    )


def child_cancel(cause: Event, pending: PendingDispatch) -> Event:
    """``$cancel`` for the child of a pending invoke whose state was exited. It names the
    parent, so a child that another instance started under the same id ignores it."""
    return Event(
        workflow_type=pending.child_workflow or "",
        instance_id=pending.child_id or "",
        type=CANCEL,
        event_id=f"{pending.dispatch_id}:cancel",
        occurred_at=cause.occurred_at,
        causation_id=cause.event_id,
        correlation_id=cause.correlation_id or cause.event_id,
        parent=ParentRef(cause.workflow_type, cause.instance_id, pending.name, pending.dispatch_id),
    )


def child_cancels(cause: Event, pending: Sequence[PendingDispatch]) -> list[Event]:
    """``$cancel`` for every child among ``pending``, in order."""
    return [child_cancel(cause, p) for p in pending if p.kind == "workflow"]


def answer(cause: Event, parent: ParentRef, outcome: str, payload: JsonObject) -> Event:
    """The child's answer to its parent: ``<name>.done`` or ``<name>.failed``."""
    return Event(
        workflow_type=parent.workflow,
        instance_id=parent.instance_id,
        type=f"{parent.name}.{outcome}",
        event_id=f"{parent.dispatch_id}:answer",
        occurred_at=cause.occurred_at,
        payload=payload,
        dispatch_id=parent.dispatch_id,
        causation_id=cause.event_id,
        correlation_id=cause.correlation_id,
    )


def final_answer(
    before: Snapshot | None,
    after: Snapshot | None,
    cause: Event,
    max_bytes: int = DEFAULT_LIMITS.result_bytes,
) -> Event | None:
    """The answer a child owes its parent when this step ended it: the final state's
    ``output`` (else the data) when it ended ``done``; ``{error, status}`` otherwise. An
    output over ``max_bytes`` (``Limits.result_bytes``, as for a handler's result) would not
    reach the parent, so the answer is ``.failed`` with the reason."""
    if after is None or after.parent is None or after.is_active:
        return None
    if before is not None and not before.is_active:
        return None  # it had ended already: answered then
    if after.status == "done":
        payload = after.output if after.output is not None else after.data
        size = len(canonical_json(dict(payload)))
        if size <= max_bytes:
            return answer(cause, after.parent, "done", payload)
        error = (
            f"the child's output is {size} bytes, over the limit of {max_bytes} "
            "(OMNINODE_MAX_RESULT_BYTES)"
        )
        return answer(cause, after.parent, "failed", {"error": error, "status": "done"})
    error = after.reason or after.status
    return answer(cause, after.parent, "failed", {"error": error, "status": after.status})


def refused_start(cause: Event, reason: str) -> Event | None:
    """The ``.failed`` answer to a child ``$start`` that is refused (an unknown workflow
    type, an instance with that id already, input failing the child's schemas)."""
    if cause.type != START or cause.parent is None:
        return None
    return answer(cause, cause.parent, "failed", {"error": reason, "status": REJECTED})
