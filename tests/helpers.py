"""Small helpers shared by the unit tests: load a chart from text, drive an instance."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from app.core.durations import format_instant, parse_instant_ms
from app.core.guards import GuardRegistry
from app.core.interpreter import StepResult, step
from app.core.loader import load_chart
from app.core.model import Chart
from app.core.snapshot import Snapshot, timer_firing
from app.spi.envelopes import Event

T0 = "2026-01-01T00:00:00Z"


def chart(text: str, guards: GuardRegistry | None = None, file: str = "test.yaml") -> Chart:
    return load_chart(textwrap.dedent(text), file, guards or GuardRegistry())


@dataclass
class Driver:
    """Feeds events to one instance, numbering event ids and keeping the clock."""

    chart: Chart
    instance_id: str = "i-1"
    snapshot: Snapshot | None = None
    now: str = T0
    results: list[StepResult] = field(default_factory=list)
    _count: int = 0

    def event(self, type_: str, payload: dict[str, Any] | None = None, **extra: Any) -> Event:
        self._count += 1
        return Event(
            workflow_type=self.chart.workflow,
            instance_id=self.instance_id,
            type=type_,
            event_id=extra.pop("event_id", f"e{self._count}"),
            occurred_at=extra.pop("at", self.now),
            payload=payload or {},
            **extra,
        )

    def send(self, type_: str, payload: dict[str, Any] | None = None, **extra: Any) -> StepResult:
        return self.apply(self.event(type_, payload, **extra))

    def apply(self, event: Event) -> StepResult:
        result = step(self.chart, self.snapshot, event)
        self.snapshot = result.snapshot
        self.results.append(result)
        return result

    def advance(self, ms: int) -> None:
        self.now = format_instant(parse_instant_ms(self.now) + ms)

    def fire(self, state: str, index: int = 0) -> StepResult:
        """Deliver the armed timer of ``state`` at its deadline."""
        assert self.snapshot is not None
        timer = next(t for t in self.snapshot.timers if t.state == state and t.index == index)
        self.now = timer.deadline
        return self.apply(timer_firing(self.chart.workflow, self.instance_id, timer))

    @property
    def config(self) -> tuple[str, ...]:
        assert self.snapshot is not None
        return self.snapshot.configuration

    @property
    def data(self) -> Any:
        assert self.snapshot is not None
        return self.snapshot.data


class ListOutbox:
    """An outbox that keeps what is sent, in order: (topic, key, value)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []

    async def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        self.sent.append((topic, key, value))

    def on(self, topic: str) -> list[bytes]:
        return [value for t, _, value in self.sent if t == topic]


T = TypeVar("T")


def until(probe: Callable[[], T], timeout_s: float = 45.0) -> T:
    """``probe()`` until it is truthy or the time is up; its last value either way."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)
