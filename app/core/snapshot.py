"""The instance snapshot: everything the reducer knows about one workflow instance.

Snapshots are frozen and hold plain JSON-able values; ``to_dict``/``from_dict`` round-trip
them without loss, and :func:`dumps` gives the canonical bytes used to compare replays.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from app.spi.envelopes import (
    DEFAULT_QUEUE,
    ChildRun,
    DispatchMode,
    Event,
    InstanceStatus,
    JsonObject,
    JsonValue,
    ParentRef,
    PendingKind,
)
from app.spi.limits import canonical_json

DEDUP_WINDOW = 64
CHILD_WINDOW = 64  # children an instance lists (the most recent), so a loop cannot grow it


@dataclass(frozen=True, slots=True)
class Timer:
    """An armed ``after`` timer; it fires as ``event`` at ``deadline`` unless cancelled."""

    id: str
    deadline: str
    event: str
    state: str
    index: int
    # An invoke's ``timeout`` (``<name>.timeout``): the dispatch it times out; index -1.
    dispatch_id: str | None = None


def timer_firing(workflow: str, instance_id: str, timer: Timer) -> Event:
    """The event an armed timer fires as, at its deadline. The id derives from the timer's,
    so a timer sent twice (a restart, a rescan) is applied once."""
    return Event(
        workflow_type=workflow,
        instance_id=instance_id,
        type=timer.event,
        event_id=f"timer:{timer.id}",
        occurred_at=timer.deadline,
        timer_id=timer.id,
        dispatch_id=timer.dispatch_id,
    )


@dataclass(frozen=True, slots=True)
class PendingDispatch:
    """An awaited effect, compute or child workflow whose result has not arrived yet.

    ``owner`` is the state whose exit makes the dispatch stale; ``""`` is the instance.
    ``input`` is kept only for effects that declare ``compensate``; ``child_workflow`` and
    ``child_id`` only for a child workflow (kind ``workflow``), which a stale exit cancels.
    """

    dispatch_id: str
    name: str
    kind: PendingKind
    mode: DispatchMode
    attempt: int
    owner: str
    compensate: str | None = None
    input: JsonObject | None = None
    child_workflow: str | None = None
    child_id: str | None = None
    queue: str = DEFAULT_QUEUE  # an effect's or compute's task queue


@dataclass(frozen=True, slots=True)
class CompletedEffect:
    """A finished effect that declared ``compensate`` (kept for the saga)."""

    dispatch_id: str
    name: str
    compensate: str
    input: JsonObject
    result: JsonValue
    queue: str = DEFAULT_QUEUE  # its compensation travels on the effect's queue


@dataclass(frozen=True, slots=True)
class Snapshot:
    workflow: str
    version: int
    instance_id: str
    status: InstanceStatus
    configuration: tuple[str, ...]
    data: Mapping[str, Any]
    seq: int
    history: Mapping[str, tuple[str, ...]]
    timers: tuple[Timer, ...]
    pending: tuple[PendingDispatch, ...]
    completed_effects: tuple[CompletedEffect, ...]
    recent_event_ids: tuple[str, ...]
    updated_at: str
    reason: str | None = None
    # RSS v1.1: who invoked this instance, whom it invoked, and its final state's output.
    parent: ParentRef | None = None
    children: tuple[ChildRun, ...] = ()
    output: JsonObject | None = None

    @property
    def is_active(self) -> bool:
        return self.status == "active"

    def with_delivery(self, event_id: str, occurred_at: str) -> Snapshot:
        """This snapshot after one more delivered event: next seq, id remembered."""
        recent = (*self.recent_event_ids, event_id)[-DEDUP_WINDOW:]
        # A constructor call, not dataclasses.replace: this runs once per delivered event.
        return Snapshot(
            self.workflow,
            self.version,
            self.instance_id,
            self.status,
            self.configuration,
            self.data,
            self.seq + 1,
            self.history,
            self.timers,
            self.pending,
            self.completed_effects,
            recent,
            occurred_at,
            self.reason,
            self.parent,
            self.children,
            self.output,
        )

    def to_dict(self) -> dict[str, Any]:
        composed: dict[
            str, Any
        ] = {}  # RSS v1.1 keys only when used: v1 snapshots keep their exact bytes
        if self.parent is not None:
            composed["parent"] = self.parent.to_dict()
        if self.children:
            composed["children"] = [c.to_dict() for c in self.children]
        if self.output is not None:
            composed["output"] = self.output
        return {
            **composed,
            "workflow": self.workflow,
            "version": self.version,
            "instance_id": self.instance_id,
            "status": self.status,
            "configuration": list(self.configuration),
            "data": self.data,
            "seq": self.seq,
            "history": {key: list(value) for key, value in sorted(self.history.items())},
            "timers": [_timer_dict(t) for t in self.timers],
            "pending": [_pending_dict(p) for p in self.pending],
            "completed_effects": [_completed_dict(c) for c in self.completed_effects],
            "recent_event_ids": list(self.recent_event_ids),
            "updated_at": self.updated_at,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Snapshot:
        return cls(
            workflow=raw["workflow"],
            version=int(raw["version"]),
            instance_id=raw["instance_id"],
            status=cast(InstanceStatus, raw["status"]),
            configuration=tuple(raw["configuration"]),
            data=raw["data"],
            seq=int(raw["seq"]),
            history={key: tuple(value) for key, value in raw["history"].items()},
            timers=tuple(Timer(**t) for t in raw["timers"]),
            pending=tuple(PendingDispatch(**p) for p in raw["pending"]),
            completed_effects=tuple(CompletedEffect(**c) for c in raw["completed_effects"]),
            recent_event_ids=tuple(raw["recent_event_ids"]),
            updated_at=raw["updated_at"],
            reason=raw.get("reason"),
            parent=ParentRef.from_dict(raw["parent"]) if raw.get("parent") else None,
            children=tuple(ChildRun(**c) for c in raw.get("children", ())),
            output=raw.get("output"),
        )


def dumps(snapshot: Snapshot) -> str:
    """Canonical JSON text of a snapshot (``canonical_json``: sorted keys, no spaces; a
    snapshot holds no NaN or infinity, since the core refuses them)."""
    return canonical_json(snapshot.to_dict())


def loads(text: str | bytes) -> Snapshot:
    return Snapshot.from_dict(json.loads(text))


def _timer_dict(timer: Timer) -> dict[str, Any]:
    found = {
        "id": timer.id,
        "deadline": timer.deadline,
        "event": timer.event,
        "state": timer.state,
        "index": timer.index,
    }
    if timer.dispatch_id is not None:
        found["dispatch_id"] = timer.dispatch_id
    return found


def _pending_dict(pending: PendingDispatch) -> dict[str, Any]:
    return {
        "dispatch_id": pending.dispatch_id,
        "name": pending.name,
        "kind": pending.kind,
        "mode": pending.mode,
        "attempt": pending.attempt,
        "owner": pending.owner,
        "compensate": pending.compensate,
        "input": pending.input,
        **(
            {"child_workflow": pending.child_workflow, "child_id": pending.child_id}
            if pending.child_workflow is not None
            else {}
        ),
        **({"queue": pending.queue} if pending.queue != DEFAULT_QUEUE else {}),
    }


def _completed_dict(done: CompletedEffect) -> dict[str, Any]:
    return {
        "dispatch_id": done.dispatch_id,
        "name": done.name,
        "compensate": done.compensate,
        "input": done.input,
        "result": done.result,
        **({"queue": done.queue} if done.queue != DEFAULT_QUEUE else {}),
    }
