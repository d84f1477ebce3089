"""The example workflows driven over Kafka, one event at a time, to their final states.

Each run is a list of steps: send an event, then wait until the instance's snapshot shows
the expected configuration (results from the demo handlers arrive on their own). ``omninode
dev`` prints each step as it happens; the integration tests run the same scripts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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


DEMO_RUNS = (
    DemoRun(
        "order_fulfillment",
        (
            DemoStep(
                "$start", {"order_id": "o-1", "total": 40, "items": ["book"]}, ("awaiting_payment",)
            ),
            DemoStep(
                "PAY",
                {"amount": 40},
                ("fulfilment.invoicing.invoiced", "fulfilment.packing.picking"),
            ),
            DemoStep("PICKED", {}, ("shipped",), "done"),
        ),
    ),
    DemoRun(
        "document_approval",
        (
            DemoStep("$start", {"title": "Q3 report"}, ("draft",)),
            DemoStep("SUBMIT", {}, ("review.pending",)),
            DemoStep("APPROVE", {"reviewer": "ana"}, ("review.pending",)),
            DemoStep("APPROVE", {"reviewer": "bo"}, ("published",), "done"),
        ),
    ),
    DemoRun(
        "loan_application",
        (
            DemoStep(
                "$start", {"applicant": "lee", "amount": 1200, "customer_years": 3}, ("intake",)
            ),
            DemoStep("SUBMIT_DOCS", {"documents": ["id"]}, ("funded",), "done"),
        ),
    ),
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
    assert snapshot is not None
    return snapshot
