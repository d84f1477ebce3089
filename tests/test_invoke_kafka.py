"""Sub-workflows on a real broker: order_fulfillment invokes a shipment child, through two
``faust -A app.main worker`` processes, with parents and children on different partitions.

Only events travel between them: the child's ``$start`` and ``$cancel`` on the events topic,
its answer on the results topic. Checked from Kafka alone: every order is shipped with its
child's tracking number, every child was started once, a parent cancelled while its child
runs cancels it (and the child compensates its booking), the child's late answer is ignored
as stale, and a child ``$start`` the child refuses answers the parent ``ship.failed``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from app.core.snapshot import Snapshot
from app.infra import topics
from app.infra.control import new_event, read_history, read_snapshot, send_events, wait_for
from app.infra.kafka_client import read_topic
from app.infra.settings import Settings
from app.infra.wire import decode_journal
from app.spi.envelopes import Event, ParentRef
from tests.conftest import ROOT, Deployment
from tests.test_kafka_runtime import PICKING, SHIPPED, all_reach, in_states, start_orders_and_pay

pytestmark = pytest.mark.kafka

HANDLERS = str(ROOT / "tests" / "fixtures" / "chaos" / "chaos_handlers.py")
ORDERS = [f"o-{n}" for n in range(10)]
HELD = ["hold-1", "hold-2"]  # print_label waits for the release file: the child keeps running


def test_children_run_on_other_partitions_answer_once_and_cascade_cancels(
    deployment: Deployment,
) -> None:
    release = deployment.workdir / "release"
    ledger = deployment.workdir / "ledger.sqlite"
    env = {
        "OMNINODE_HANDLERS": HANDLERS,
        "CHAOS_LEDGER": str(ledger),
        "CHAOS_RELEASE": str(release),
        "CHAOS_HOLD_S": "120",
    }
    workers = [deployment.worker(name, **env) for name in ("a", "b")]
    for worker in workers:
        worker.wait_ready()
    settings = deployment.settings
    ids = ORDERS + HELD
    deployment.run(_to_shipping(settings, ids))

    shipped = deployment.run(all_reach(settings, ORDERS, SHIPPED))
    for parent in shipped:
        (child,) = parent.children
        assert child.status == "done" and child.workflow == "shipment"
        snapshot = deployment.run(read_snapshot(settings, "shipment", child.instance_id))
        assert snapshot is not None and snapshot.status == "done"
        assert snapshot.parent == ParentRef(
            "order_fulfillment", parent.instance_id, "ship", child.dispatch_id
        )
        # The chaos ledger's label: "print_label:<idempotency key, the child's command id>"
        tracking = parent.data["tracking"]
        assert tracking.startswith(f"print_label:shipment:{child.instance_id}:")
        assert snapshot.output == {"tracking": tracking, **_booking(snapshot)}

    # A parent cancelled while its child runs: the child is cancelled and compensates.
    held = deployment.run(all_reach(settings, HELD, in_states("shipping")))
    held_child = {p.instance_id: p.children[0].instance_id for p in held}
    cancel = new_event("order_fulfillment", "hold-1", "CANCEL_REQUESTED", None, "hold-1:cancel")
    deployment.run(send_events(settings, [cancel]))
    cancelled = deployment.run(
        wait_for(settings, "shipment", held_child["hold-1"], _ended("cancelled"), 60)
    )
    assert cancelled.configuration == ()
    release.touch()  # hold-1's label now answers (stale: its child is cancelled); hold-2 ships
    deployment.run(all_reach(settings, ["hold-2"], SHIPPED))
    parent = deployment.run(wait_for(settings, "order_fulfillment", "hold-1", _ended("failed"), 60))
    assert parent.configuration == ("cancelled_after_payment",)
    assert parent.children[0].status == "cancelled"
    late = deployment.run(_journal_types(settings, "order_fulfillment", "hold-1", "ship.failed"))
    assert late == [(True, "cancelled")]  # the cancelled child's answer, ignored as stale

    _assert_started_once_on_other_partitions(deployment, settings, ids)
    _assert_compensations(ledger, held_child["hold-1"])

    # A child $start the child refuses (payload without order_id) answers the parent.
    refused = Event(
        "shipment",
        "stray-child",
        "$start",
        "stray-start",
        "2026-01-01T00:00:00Z",
        {},
        parent=ParentRef("order_fulfillment", "o-0", "ship", "stray-start"),
    )
    deployment.run(send_events(settings, [refused]))
    answers = deployment.run(
        _await_types(settings, "order_fulfillment", "o-0", "ship.failed", count=1)
    )
    assert answers == [(True, "rejected")]  # o-0 is done: recorded, ignored


def _booking(snapshot: Snapshot) -> dict[str, str]:
    return {"booking": snapshot.data["booking"]}


def _ended(status: str):  # type: ignore[no-untyped-def]
    return lambda s: s.status == status


async def _to_shipping(settings: Settings, ids: list[str]) -> None:
    await start_orders_and_pay(settings, ids)
    await all_reach(settings, ids, PICKING)
    picked = [new_event("order_fulfillment", i, "PICKED", None, f"{i}:PICKED") for i in ids]
    await send_events(settings, picked)


async def _journal_types(
    settings: Settings, workflow: str, instance_id: str, event_type: str
) -> list[tuple[bool, str]]:
    """(ignored, payload status) of the instance's journaled events of ``event_type``."""
    records = await read_history(settings, workflow, instance_id)
    return [
        (r.ignored, str(r.event.payload.get("status")))
        for r in records
        if r.event.type == event_type
    ]


async def _await_types(
    settings: Settings, workflow: str, instance_id: str, event_type: str, count: int
) -> list[tuple[bool, str]]:
    for _ in range(200):
        found = await _journal_types(settings, workflow, instance_id, event_type)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.3)
    raise AssertionError(f"{workflow}:{instance_id} never journaled {event_type}")


def _assert_started_once_on_other_partitions(
    deployment: Deployment, settings: Settings, ids: list[str]
) -> None:
    """Every child journal has one $start (seq 1); some parent and child live on different
    partitions of the journal (which is co-partitioned with events and snapshots)."""
    journal = deployment.run(read_topic(settings, settings.topic(topics.JOURNAL)))
    partition: dict[str, int] = {}
    starts: Counter[str] = Counter()
    seqs: dict[str, set[int]] = defaultdict(set)
    for record in journal:
        key = record.key.decode()
        decoded = decode_journal(record.value)
        partition[key] = record.partition
        if decoded.event.type == "$start" and decoded.seq not in seqs[key]:
            starts[key] += 1
        seqs[key].add(decoded.seq)
    children = {k for k in partition if k.startswith("shipment:") and "stray" not in k}
    assert len(children) == len(ids)  # one child per order, none started twice
    assert all(starts[k] == 1 for k in children), starts
    pairs = [(f"order_fulfillment:{k.split(':')[1].split('.')[0]}", k) for k in children]
    assert any(partition[parent] != partition[child] for parent, child in pairs), partition


def _assert_compensations(ledger: Path, cancelled_child: str) -> None:
    """The cancelled child cancelled its carrier booking; no effect was applied twice."""
    db = sqlite3.connect(ledger)
    applied = list(db.execute("SELECT key, effect, instance FROM applied"))
    compensations = [e for _, e, i in applied if i == f"shipment:{cancelled_child}"]
    assert sorted(compensations) == ["book_carrier", "cancel_carrier", "print_label"]
    assert len({key for key, _, _ in applied}) == len(applied)
