"""The API's writes: an event built and checked as the reducer would check it, then
produced; and the dead letters (listed, shown, replayed).

An event is checked before anything is produced, so a 400 means nothing was sent: the
envelope, the payload as plain JSON within the depth limit, the event type (a chart that
declares ``events:`` accepts those, ``$cancel`` and ``$migrate``; timer firings, internal
events and ``$start`` outside its endpoint are refused), the payload's declared schema,
a ``$start``'s data against ``data_schema``, and the record's size on the wire. The
worker that holds the instance's snapshot does this, so the chart is the version the
instance runs on, and an ``Idempotency-Key`` the instance has already applied answers
202 with ``duplicate: true`` and sends nothing again.
"""

from __future__ import annotations

import heapq
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from app.core.durations import parse_instant_ms
from app.core.errors import StepFailure, UnknownWorkflow
from app.core.model import Chart
from app.core.router import ChartRegistry
from app.core.snapshot import Snapshot
from app.core.validation import (
    check_data_schema,
    envelope_problem,
    payload_problem,
    plain_payload_problem,
)
from app.infra.control import describe_record, new_event
from app.infra.http_inputs import ListQuery, bad_request, encode_cursor, not_found, too_large
from app.infra.http_routing import HttpError
from app.infra.wire import encode_event
from app.spi.envelopes import CANCEL, MIGRATE, START, TIMER_PREFIX, Event
from app.spi.limits import Limits

Produce = Callable[[bytes, bytes], Awaitable[int]]  # key, value -> the partition it went to
DEAD_LETTER_FIELDS = (
    "id",
    "stage",
    "reason",
    "source_topic",
    "source_partition",
    "source_offset",
    "workflow_type",
    "instance_id",
    "event_type",
    "failed_at",
    "value_size",
    "value_sha256",
    "value_truncated",
)


def chart_for(registry: ChartRegistry, workflow: str, version: int | None) -> Chart:
    """The chart an event is checked with: 404 for an unknown workflow type, 400 for a
    version that is not loaded."""
    if workflow not in registry:
        raise not_found(f"no workflow type {workflow!r} is loaded")
    try:
        return registry.get(workflow, version)
    except UnknownWorkflow as exc:
        raise bad_request(str(exc)) from exc


def reserved_problem(event_type: str) -> str | None:
    """Why ``event_type`` may never be sent to the events endpoint, whatever the chart."""
    if event_type == START:
        return "$start is sent with POST /api/instances/{workflow}/{id}"
    if event_type.startswith(TIMER_PREFIX):
        return f"{event_type!r} is a timer firing: the workers send those"
    return None


def type_problem(chart: Chart, event_type: str) -> str | None:
    """Why ``event_type`` may not be sent to an instance of ``chart`` from outside."""
    reserved = reserved_problem(event_type)
    if reserved is not None:
        return reserved
    if event_type in chart.internal_events:
        return f"{event_type!r} is an internal event of {chart.workflow} (raised by the chart)"
    if chart.events and event_type not in chart.events and event_type not in (CANCEL, MIGRATE):
        declared = ", ".join(sorted(chart.events)) or "none"
        return (
            f"{chart.workflow} v{chart.version} declares its events and {event_type!r} is not "
            f"one of them (declared: {declared}; also $cancel, $migrate)"
        )
    return None


def event_problem(chart: Chart, event: Event) -> str | None:
    """What the reducer would refuse about ``event``, checked before it is produced."""
    problem = envelope_problem(event) or plain_payload_problem(chart, event)
    if problem is None and event.type != START:
        problem = type_problem(chart, event.type)
    if problem is None:
        problem = payload_problem(chart, event)
    if problem is None and event.type == START:
        try:
            check_data_schema(chart, {**chart.initial_data, **event.payload})
        except StepFailure as failure:
            problem = f"$start: {failure}"
    return problem


def check_size(event: Event, limits: Limits) -> bytes:
    """The event's record value, within ``OMNINODE_MAX_EVENT_BYTES`` (413 over it)."""
    value = encode_event(event)
    if len(value) > limits.event_bytes:
        raise too_large(len(value), limits)
    return value


async def accept(
    registry: ChartRegistry,
    limits: Limits,
    snapshot: Snapshot | None,
    event: Event,
    produce: Produce,
) -> tuple[int, dict[str, Any]]:
    """Check ``event`` against the instance (its snapshot, when it exists) and produce it:
    (status, body). 409 for a ``$start`` of an instance that exists."""
    answer: dict[str, Any] = {"event_id": event.event_id, "type": event.type, "key": event.key}
    if snapshot is not None and event.event_id in snapshot.recent_event_ids:
        return 202, {**answer, "duplicate": True}
    if snapshot is not None and event.type == START:
        raise HttpError(409, "conflict", f"instance {event.key} exists (status {snapshot.status})")
    version = snapshot.version if snapshot is not None else event.version
    chart = chart_for(registry, event.workflow_type, version)
    problem = event_problem(chart, event)
    if problem is not None:
        raise bad_request(problem)
    partition = await produce(event.key.encode(), check_size(event, limits))
    return 202, {**answer, "duplicate": False, "partition": partition}


def make_event(
    workflow: str,
    instance: str,
    event_type: str,
    payload: Mapping[str, Any],
    event_id: str | None,
    version: int | None,
) -> Event:
    event = new_event(workflow, instance, event_type, payload, event_id)
    return replace(event, version=version) if version is not None else event


# --- dead letters ---------------------------------------------------------------------


def letter_row(letter: Mapping[str, Any]) -> dict[str, Any]:
    """A dead letter in a list: its fields without the original bytes, the key as hex."""
    row = {name: letter.get(name) for name in DEAD_LETTER_FIELDS}
    key = letter.get("key")
    row["key"] = key.hex() if isinstance(key, bytes) else None
    return row


def letter_detail(letter: Mapping[str, Any]) -> dict[str, Any]:
    """One dead letter in full: the original bytes as hex, and decoded when it is ours."""
    value = letter.get("value")
    return {
        **letter_row(letter),
        "value": value.hex() if isinstance(value, bytes) else None,
        "record": describe_record(value),
    }


def letter_sort(letter: Mapping[str, Any]) -> tuple[int, str]:
    """A dead letter's place in a page, newest first: ``failed_at`` in ms, then its id."""
    try:
        at = parse_instant_ms(str(letter.get("failed_at")))
    except (ValueError, TypeError, OverflowError):
        at = 0
    return at, str(letter["id"])


class LetterHeap:
    """The newest ``limit`` letters of a stage after a cursor, kept in a heap of ``limit``
    rows without their original bytes while the dead-letter topic streams by (memory
    bounded by the page, not by the topic)."""

    def __init__(self, stage: str | None, query: ListQuery) -> None:
        self.stage = stage
        self.query = query
        self._heap: list[tuple[tuple[int, str], dict[str, Any]]] = []  # oldest on top
        self._more = False

    def add(self, letter: Mapping[str, Any]) -> None:
        if self.stage is not None and letter.get("stage") != self.stage:
            return
        key = letter_sort(letter)
        if self.query.after is not None and not key < self.query.after:
            return
        if len(self._heap) < self.query.limit:
            heapq.heappush(self._heap, (key, letter_row(letter)))
            return
        self._more = True  # one more than the page holds: a next page exists
        if key > self._heap[0][0]:
            heapq.heapreplace(self._heap, (key, letter_row(letter)))

    def page(self) -> dict[str, Any]:
        """Newest first (``failed_at``, then id), with the cursor after the last row."""
        rows = sorted(self._heap, key=lambda item: item[0], reverse=True)
        cursor = encode_cursor(rows[-1][0]) if self._more and rows else None
        return {"deadletters": [row for _, row in rows], "next_cursor": cursor}


def letter_page(
    letters: Iterable[Mapping[str, Any]], stage: str | None, query: ListQuery
) -> dict[str, Any]:
    """One page of ``letters``: see :class:`LetterHeap`."""
    heap = LetterHeap(stage, query)
    for letter in letters:
        heap.add(letter)
    return heap.page()
