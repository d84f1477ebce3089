"""The top-level router: charts by workflow type and version."""

from __future__ import annotations

import pytest

from app.core.errors import DuplicateWorkflow, UnknownWorkflow
from app.core.router import ChartRegistry
from app.spi.envelopes import Event, RetryPolicy
from tests.helpers import T0, chart

V1 = "rss: 1\nworkflow: w\nversion: 1\ninitial: a\nstates:\n  a: {on: {GO: b}}\n  b: {}\n"
V2 = "rss: 1\nworkflow: w\nversion: 2\ninitial: a\nstates:\n  a: {on: {GO: c}}\n  c: {}\n"


def event(type_: str, event_id: str, workflow: str = "w") -> Event:
    return Event(workflow, "i-1", type_, event_id, T0)


def test_new_instances_use_latest_version_and_keep_it() -> None:
    registry = ChartRegistry([chart(V1, file="v1.yaml")])
    started = registry.route(None, event("$start", "e1"))
    assert started.snapshot is not None and started.snapshot.version == 1
    registry.register(chart(V2, file="v2.yaml"))
    moved = registry.route(started.snapshot, event("GO", "e2"))
    assert moved.snapshot is not None and moved.snapshot.configuration == ("b",)
    fresh = registry.route(None, event("$start", "e3"))
    assert fresh.snapshot is not None and fresh.snapshot.version == 2


def test_unknown_workflow_type_is_rejected_not_raised() -> None:
    registry = ChartRegistry([chart(V1)])
    result = registry.route(None, event("$start", "e1", workflow="nope"))
    assert result.trace.outcome == "rejected"
    assert result.trace.reason == "unknown workflow type 'nope' (known: w)"
    with pytest.raises(UnknownWorkflow, match="has no version 7"):
        registry.get("w", 7)


def test_same_version_from_two_files_is_refused() -> None:
    registry = ChartRegistry([chart(V1, file="one.yaml")])
    with pytest.raises(DuplicateWorkflow, match=r"also defined in one\.yaml"):
        registry.register(chart(V1, file="two.yaml"))
    assert [c.file for c in registry] == ["one.yaml"]


def test_retry_backoff_grows_exponentially_up_to_max() -> None:
    policy = RetryPolicy(max_attempts=5, backoff="exponential", initial_ms=1_000, max_ms=3_000)
    assert [policy.delay_before_attempt_ms(n) for n in range(1, 6)] == [
        0,
        1_000,
        2_000,
        3_000,
        3_000,
    ]
    fixed = RetryPolicy(backoff="fixed", initial_ms=500)
    assert [fixed.delay_before_attempt_ms(n) for n in (1, 2, 3)] == [0, 500, 500]
