"""Per-workflow state counts: how many instances are in each atomic state, and in each status.

An active or finished instance counts once for each atomic state in its configuration; an
instance with an empty configuration (cancelled) counts under ``(<status>)``. Every
instance also counts once under ``(status:<status>)`` (``active``, ``done``, ``failed``,
``cancelled``): the per-status totals behind the ``omninode_instances`` gauge. State names
never start with ``(``, so neither kind of key can be a state's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from projectors.instances import InstanceView


@dataclass(frozen=True, slots=True)
class StateCount:
    """A count (or a +1/-1 change to one) of a workflow's instances in a state; on the wire
    it is ``omninode.StateCount`` (``app.infra.wire.encode_state_count``/
    ``decode_state_count``), keyed ``workflowType:state``."""

    workflow_type: str
    state: str
    count: int

    @property
    def key(self) -> str:
        return f"{self.workflow_type}:{self.state}"

    @classmethod
    def of_key(cls, key: str, count: int) -> StateCount:
        workflow, state = split_key(key)
        return cls(workflow, state, count)

    def to_record(self) -> dict[str, object]:
        return {"workflow_type": self.workflow_type, "state": self.state, "count": self.count}

    @classmethod
    def from_record(cls, raw: Mapping[str, Any]) -> StateCount:
        return cls(str(raw["workflow_type"]), str(raw["state"]), int(raw["count"]))


def state_keys(view: InstanceView | None) -> list[str]:
    if view is None:
        return []
    states = list(view.configuration) or [f"({view.status})"]
    states.append(status_state(view.status))
    return [f"{view.workflow_type}:{state}" for state in states]


def status_state(status: str) -> str:
    """The pseudo-state under which the instances of one status are counted."""
    return f"{STATUS_PREFIX}{status})"


STATUS_PREFIX = "(status:"


def deltas(before: InstanceView | None, after: InstanceView) -> dict[str, int]:
    """+1/-1 changes to the counts when an instance's view moves from before to after."""
    change: Counter[str] = Counter(state_keys(after))
    change.subtract(state_keys(before))
    return {key: n for key, n in sorted(change.items()) if n}


def split_key(key: str) -> tuple[str, str]:
    workflow, _, state = key.partition(":")
    return workflow, state


def totals(views: dict[str, InstanceView]) -> dict[str, int]:
    """The counts of a set of instance views, computed from scratch (for rebuilds)."""
    counted: Counter[str] = Counter()
    for view in views.values():
        counted.update(state_keys(view))
    return dict(sorted(counted.items()))
