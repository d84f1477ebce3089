"""The example workflows driven over Kafka, one event at a time, to their final states.

Each run is a list of steps: send an event, then wait until the instance's snapshot shows
the expected configuration (results from the demo handlers arrive on their own). ``omninode
dev`` prints each step as it happens; the integration tests run the same scripts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from app.core.snapshot import Snapshot
from app.infra.control import new_event, send_events, wait_for
from app.infra.settings import Settings


@dataclass(frozen=True, slots=True)
class DemoStep:
    event: str
    payload: dict[str, Any]
    until: tuple[str, ...]  # atomic states that must all be active afterwards
    status: str = "active"


@dataclass(frozen=True, slots=True)
class DemoRun:
    workflow: str
    steps: tuple[DemoStep, ...]

    @property
    def final(self) -> DemoStep:
        return self.steps[-1]


DEMO_FILE = Path(__file__).resolve().parents[2] / "examples" / "demo_runs.yaml"


@cache
def demo_runs(path: Path = DEMO_FILE) -> tuple[DemoRun, ...]:
    """The runs in ``examples/demo_runs.yaml``: per workflow, its steps in order."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    return tuple(
        DemoRun(
            workflow,
            tuple(
                DemoStep(
                    step["event"],
                    step.get("payload", {}),
                    tuple(step["until"]),
                    step.get("status", "active"),
                )
                for step in steps
            ),
        )
        for workflow, steps in raw.items()
    )


def reached(step: DemoStep, after_seq: int) -> Callable[[Snapshot], bool]:
    def check(snapshot: Snapshot) -> bool:
        return (
            snapshot.seq > after_seq
            and snapshot.status == step.status
            and set(step.until) <= set(snapshot.configuration)
        )

    return check


async def drive(
    settings: Settings,
    run: DemoRun,
    instance_id: str,
    report: Callable[[str], None] = lambda line: None,
    timeout_s: float = 60.0,
) -> Snapshot:
    """Send each step's event and wait for its state; returns the final snapshot."""
    snapshot: Snapshot | None = None
    for step in run.steps:
        await send_events(
            settings, [new_event(run.workflow, instance_id, step.event, step.payload)]
        )
        snapshot = await wait_for(
            settings,
            run.workflow,
            instance_id,
            reached(step, snapshot.seq if snapshot else 0),
            timeout_s,
        )
        report(
            f"{run.workflow}:{instance_id}  {step.event:<12} -> {snapshot.status:<7} "
            f"{', '.join(snapshot.configuration)}  (seq {snapshot.seq})"
        )
        for child in snapshot.children:  # a child workflow it invoked (RSS v1.1 invoke)
            report(f"    invoked {child.name}: {child.key}  {child.status}")
    assert snapshot is not None
    return snapshot
