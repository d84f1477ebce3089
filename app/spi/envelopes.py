"""Frozen envelopes that cross every boundary: inbound events and outbound commands.

They hold plain JSON-able values only, so that every adapter (in-memory, Avro on Kafka,
JSON lines for the simulator) can carry them without loss.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

JsonValue: TypeAlias = bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"] | None
JsonObject: TypeAlias = Mapping[str, JsonValue]

InstanceStatus = Literal["active", "done", "failed", "cancelled"]
DispatchKind = Literal["effect", "compute"]  # what worker agents run
# What an instance may wait for: a worker's dispatch, or a child workflow (``invoke``).
PendingKind = Literal["effect", "compute", "workflow"]
DispatchMode = Literal["await", "fire_and_forget"]

START = "$start"
CANCEL = "$cancel"
MIGRATE = "$migrate"  # RSS v1.1: payload {"to": N} moves an instance onto version N
TIMER_PREFIX = "$after."
RESULT_SUFFIXES = (".done", ".failed", ".timeout")
# Task queues: an effect or compute names one (``queue:``, default ``default``); its commands
# travel on ``<app>.commands.<queue>``, served by the workers that handle that queue. The
# name becomes part of a topic name, so it is short and topic-safe.
DEFAULT_QUEUE = "default"
QUEUE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,47}$"


def instance_key(workflow_type: str, instance_id: str) -> str:
    """The Kafka key of every record about one instance: ``workflowType:instanceId``."""
    return f"{workflow_type}:{instance_id}"


@dataclass(frozen=True, slots=True)
class ParentRef:
    """The instance that invoked a child workflow, kept in the child's snapshot: the child's
    end answers ``<name>.done|failed`` to it, tied to the invoke by ``dispatch_id``."""

    workflow: str
    instance_id: str
    name: str
    dispatch_id: str

    @property
    def key(self) -> str:
        return instance_key(self.workflow, self.instance_id)

    def to_dict(self) -> dict[str, JsonValue]:
        return {
            "workflow": self.workflow,
            "instance_id": self.instance_id,
            "name": self.name,
            "dispatch_id": self.dispatch_id,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, JsonValue]) -> ParentRef:
        return cls(
            workflow=str(raw["workflow"]),
            instance_id=str(raw["instance_id"]),
            name=str(raw["name"]),
            dispatch_id=str(raw["dispatch_id"]),
        )


@dataclass(frozen=True, slots=True)
class ChildRun:
    """A child workflow an instance invoked, and how it ended as far as the parent knows:
    ``running``, ``done``, ``failed``, ``timeout`` or ``cancelled``."""

    name: str
    workflow: str
    instance_id: str
    dispatch_id: str
    status: str

    @property
    def key(self) -> str:
        return instance_key(self.workflow, self.instance_id)

    def to_dict(self) -> dict[str, JsonValue]:
        return {
            "name": self.name,
            "workflow": self.workflow,
            "instance_id": self.instance_id,
            "dispatch_id": self.dispatch_id,
            "status": self.status,
        }


@dataclass(frozen=True, slots=True)
class Event:
    """One event addressed to one workflow instance.

    ``occurred_at`` is an ISO-8601 UTC timestamp; it is the only clock the reducer sees.
    ``dispatch_id`` ties a result event (``<name>.done|failed|timeout``) to its command and
    ``timer_id`` ties a timer firing to the armed timer, so stale ones can be told apart.
    """

    workflow_type: str
    instance_id: str
    type: str
    event_id: str
    occurred_at: str
    payload: JsonObject = field(default_factory=dict)
    dispatch_id: str | None = None
    timer_id: str | None = None
    causation_id: str | None = None
    correlation_id: str | None = None
    # On a ``$start``: the chart version the new instance runs on (None: the latest
    # loaded), and for a child (RSS v1.1 ``invoke``) the invoking instance.
    parent: ParentRef | None = None
    version: int | None = None

    @property
    def key(self) -> str:
        return instance_key(self.workflow_type, self.instance_id)

    def to_dict(self) -> dict[str, JsonValue]:
        return {
            "workflow_type": self.workflow_type,
            "instance_id": self.instance_id,
            "type": self.type,
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "payload": dict(self.payload),
            "dispatch_id": self.dispatch_id,
            "timer_id": self.timer_id,
            "causation_id": self.causation_id,
            "correlation_id": self.correlation_id,
            "parent": self.parent.to_dict() if self.parent is not None else None,
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, JsonValue]) -> Event:
        payload = raw.get("payload") or {}
        if not isinstance(payload, dict):
            raise ValueError("event payload must be a JSON object")
        return cls(
            workflow_type=str(raw["workflow_type"]),
            instance_id=str(raw["instance_id"]),
            type=str(raw["type"]),
            event_id=str(raw["event_id"]),
            occurred_at=str(raw["occurred_at"]),
            payload=payload,
            dispatch_id=_optional_str(raw.get("dispatch_id")),
            timer_id=_optional_str(raw.get("timer_id")),
            causation_id=_optional_str(raw.get("causation_id")),
            correlation_id=_optional_str(raw.get("correlation_id")),
            parent=_parent(raw.get("parent")),
            version=_optional_int(raw.get("version")),
        )


def _optional_str(value: JsonValue) -> str | None:
    return None if value is None else str(value)


def _optional_int(value: JsonValue) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, not {value!r}")
    return value


def _parent(value: JsonValue) -> ParentRef | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError("event parent must be an object")
    return ParentRef.from_dict(value)


@dataclass(frozen=True, slots=True)
class JournalRecord:
    """One accepted event in an instance's append-only journal, with its gapless seq."""

    seq: int
    event: Event
    ignored: bool
    status: InstanceStatus
    workflow_version: int = 0
    configuration: tuple[str, ...] = ()
    reason: str | None = None
    # Events the step raised (RSS v1.1 ``raise``), in raise order; they have no seq.
    raised: tuple[str, ...] = ()
    # The instance's children after the step, when the step changed them (None: unchanged).
    children: tuple[ChildRun, ...] | None = None
    # A digest of the step's outputs (commands, events for other instances), for replay's
    # determinism check: "" for none; None in records written before it was kept.
    outputs: str | None = None

    @property
    def key(self) -> str:
        return self.event.key


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a worker retries a failed or timed-out attempt of a dispatch."""

    max_attempts: int = 3
    backoff: Literal["fixed", "exponential"] = "exponential"
    initial_ms: int = 1_000
    max_ms: int = 60_000

    def delay_before_attempt_ms(self, attempt: int) -> int:
        """Back-off before ``attempt`` (2, 3, ...); attempt 1 starts at once."""
        if attempt <= 1:
            return 0
        if self.backoff == "fixed":
            return self.initial_ms
        return int(min(self.max_ms, self.initial_ms * 2 ** (attempt - 2)))

    def budget_ms(self, timeout_ms: int) -> int:
        """The longest a worker can take on a command: every attempt's timeout and every
        back-off between attempts."""
        attempts = range(1, max(1, self.max_attempts) + 1)
        return sum(timeout_ms + self.delay_before_attempt_ms(a) for a in attempts)


# A dispatch with no answer this long after its budget times out (see dispatch_deadline_ms).
DEADLINE_GRACE_MS = 60_000


def dispatch_deadline_ms(retry: RetryPolicy, timeout_ms: int) -> int:
    """How long the reducer waits for an awaited dispatch's answer before it answers
    ``<name>.timeout`` itself (schedule-to-close): twice the retry budget, and at least the
    budget plus a minute, which leaves a slow queue time to reach the command; a worker
    that answers later is ignored as stale."""
    budget = retry.budget_ms(timeout_ms)
    return budget + max(budget, DEADLINE_GRACE_MS)


@dataclass(frozen=True, slots=True)
class Command:
    """An effect or compute for a worker to run, produced by a step of the reducer.

    ``command_id`` is deterministic (instance, seq, position) so that a re-emitted command
    after a crash carries the same id, which workers use as the idempotency key.
    """

    command_id: str
    workflow_type: str
    instance_id: str
    seq: int
    kind: DispatchKind
    name: str
    mode: DispatchMode
    input: JsonObject
    retry: RetryPolicy
    timeout_ms: int | None
    compensate: str | None = None
    compensation_of: str | None = None
    queue: str = DEFAULT_QUEUE

    @property
    def key(self) -> str:
        return instance_key(self.workflow_type, self.instance_id)
