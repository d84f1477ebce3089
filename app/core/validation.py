"""What :func:`app.core.interpreter.step` checks about its input and its result: the event's
envelope, its payload (plain JSON within the chart's depth, then its declared schema) and,
after a macrostep that changed something, the data against the chart's ``data_schema``.

Each ``*_problem`` returns the reason an event is rejected, or ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.core.durations import parse_instant_ms
from app.core.errors import StepFailure
from app.core.model import Chart
from app.spi.envelopes import Event
from app.spi.limits import json_problem


def envelope_problem(event: Event) -> str | None:
    if not event.event_id:
        return "event_id is empty"
    if not event.type:
        return "event type is empty"
    try:
        parse_instant_ms(event.occurred_at)
    except (ValueError, TypeError, OverflowError):
        return f"occurred_at is not an ISO-8601 instant: {event.occurred_at!r}"
    return None


def plain_payload_problem(chart: Chart, event: Event) -> str | None:
    if not event.payload:
        return None
    problem = json_problem(event.payload, chart.limits.json_depth)
    return f"payload: {problem}" if problem else None


def payload_problem(chart: Chart, event: Event) -> str | None:
    validator = chart.validators.get(event.type)
    if validator is None:
        return None
    error = next(iter(validator.iter_errors(dict(event.payload))), None)
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "payload"
    return f"payload of {event.type} fails its declared schema at {where}: {error.message}"


def check_data_schema(chart: Chart, data: Mapping[str, Any]) -> None:
    """Raise :class:`StepFailure` when ``data`` fails the chart's ``data_schema``."""
    validator = chart.validators.get("$data")
    if validator is None:
        return
    error = next(iter(validator.iter_errors(data)), None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "data"
        raise StepFailure(f"data fails data_schema at {where}: {error.message}")
