"""The instance read model: status, configuration, seq and updated_at of every instance,
its parent (for a child workflow) and its children (for an instance that invoked some)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.spi.envelopes import JournalRecord


@dataclass(frozen=True, slots=True)
class InstanceView:
    """One instance's read model; on the wire it is ``omninode.InstanceView``
    (``app.infra.wire.encode_instance_view``/``decode_instance_view``)."""

    workflow_type: str
    instance_id: str
    workflow_version: int
    status: str
    configuration: tuple[str, ...]
    seq: int
    updated_at: str
    parent: str | None = None  # the parent's key, workflowType:instanceId
    children: tuple[tuple[str, str, str], ...] = ()  # (invoke name, child key, status)

    def to_record(self) -> dict[str, object]:
        return {
            "workflow_type": self.workflow_type,
            "instance_id": self.instance_id,
            "workflow_version": self.workflow_version,
            "status": self.status,
            "configuration": list(self.configuration),
            "seq": self.seq,
            "updated_at": self.updated_at,
            "parent": self.parent,
            "children": [{"name": n, "key": k, "status": s} for n, k, s in self.children],
        }

    @classmethod
    def from_record(cls, raw: Mapping[str, Any]) -> InstanceView:
        return cls(
            workflow_type=str(raw["workflow_type"]),
            instance_id=str(raw["instance_id"]),
            workflow_version=int(raw["workflow_version"]),
            status=str(raw["status"]),
            configuration=tuple(raw["configuration"]),
            seq=int(raw["seq"]),
            updated_at=str(raw["updated_at"]),
            parent=str(raw["parent"]) if raw.get("parent") is not None else None,
            children=tuple(
                (str(c["name"]), str(c["key"]), str(c["status"])) for c in raw.get("children", ())
            ),
        )


def project(current: InstanceView | None, record: JournalRecord) -> InstanceView | None:
    """The view after ``record``; None when the record is not newer than the view."""
    if current is not None and record.seq <= current.seq:
        return None
    event = record.event
    parent = event.parent.key if event.parent is not None else None
    children = current.children if current is not None else ()
    if record.children is not None:
        children = tuple((c.name, c.key, c.status) for c in record.children)
    return InstanceView(
        workflow_type=event.workflow_type,
        instance_id=event.instance_id,
        workflow_version=record.workflow_version,
        status=record.status,
        configuration=record.configuration,
        seq=record.seq,
        updated_at=event.occurred_at,
        parent=parent if parent is not None else (current.parent if current else None),
        children=children,
    )
