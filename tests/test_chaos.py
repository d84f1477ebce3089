"""Chaos: several hundred instances while worker processes are SIGKILLed and restarted.

Two `faust -A app.main worker` processes run the example workflows. Instances are
started in waves; a driver reacts to the instance projection (PICKED or CANCEL_REQUESTED
when an order reaches picking; for a "hold" order, whose shipment child is held at its
label, CANCEL_REQUESTED once the order is shipping, which cancels the running child). Meanwhile worker processes are killed with SIGKILL at
random moments, at least CHAOS_KILLS times, and restarted at once, sometimes with their
RocksDB wiped. Afterwards, from Kafka alone:

- every instance is in the final state its class predicts, and the reducer replaying the
  instance's journal (the events it actually received) gives that very snapshot; so is
  every order's shipment child (done, or cancelled for a "hold" order), which was started
  exactly once;
- each journal is gapless after de-duplication by (instance, seq), and every re-emitted
  record is byte-identical to the first;
- every effect the journals dispatched was applied exactly once by idempotency key, and
  nothing else was applied;
- dead letters hold exactly the inputs that were meant to be bad.

Bounded: loopback only, sizes and kill count from CHAOS_INSTANCES / CHAOS_KILLS, and a
deadline. The figures are printed (run with -s to see them).
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import sqlite3
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from app.core.replay import replay
from app.core.router import ChartRegistry
from app.core.snapshot import Snapshot, dumps
from app.infra import topics
from app.infra.avro import codec
from app.infra.chart_files import import_handlers, read_chart
from app.infra.control import new_event, send_events
from app.infra.instance_store import decode_stored
from app.infra.kafka_client import produce, read_topic
from app.infra.settings import Settings
from app.infra.wire import decode_dead_letter, decode_journal
from app.spi.envelopes import Event, JournalRecord
from tests.conftest import ROOT, Cluster, Deployment, make_deployment

pytestmark = pytest.mark.kafka

INSTANCES = int(os.environ.get("CHAOS_INSTANCES", "300"))
KILLS = int(os.environ.get("CHAOS_KILLS", "20"))
DEADLINE_S = float(os.environ.get("CHAOS_DEADLINE_S", "420"))
HANDLERS = str(ROOT / "tests" / "fixtures" / "chaos" / "chaos_handlers.py")
EXPECTED = {  # class -> (status, configuration)
    "loan": ("done", ("funded",)),
    "doc": ("done", ("published",)),
    "order": ("done", ("shipped",)),
    "cancel": ("failed", ("cancelled_after_payment",)),
    "hold": ("failed", ("cancelled_after_payment",)),
}
CHILD_EXPECTED = {"order": ("done", ("shipped",)), "hold": ("cancelled", ())}
KINDS = ["loan", "doc", "order", "cancel", "loan", "doc", "order", "cancel", "order", "hold"]
BAD_INPUTS = [b"\x00garbage", b"", b"\x00\x00\x00\x00\x01not-an-event", b'{"json": true}']


def opening_events(kind: str, instance_id: str) -> list[Event]:
    def event(workflow: str, type_: str, payload: dict | None = None) -> Event:
        return new_event(workflow, instance_id, type_, payload, f"{instance_id}:{type_}:{kind}")

    if kind == "loan":
        return [
            event(
                "loan_application",
                "$start",
                {"applicant": instance_id, "amount": 1200, "customer_years": 3},
            ),
            event("loan_application", "SUBMIT_DOCS", {"documents": ["id"]}),
        ]
    if kind == "doc":
        return [
            event("document_approval", "$start", {"title": instance_id}),
            event("document_approval", "SUBMIT"),
            event("document_approval", "APPROVE", {"reviewer": "ana"}),
            new_event(
                "document_approval",
                instance_id,
                "APPROVE",
                {"reviewer": "bo"},
                f"{instance_id}:APPROVE2",
            ),
        ]
    return [
        event(
            "order_fulfillment", "$start", {"order_id": instance_id, "total": 40, "items": ["book"]}
        ),
        event("order_fulfillment", "PAY", {"amount": 40}),
    ]


WORKFLOW = {
    "loan": "loan_application",
    "doc": "document_approval",
    "order": "order_fulfillment",
    "cancel": "order_fulfillment",
    "hold": "order_fulfillment",
}


@pytest.fixture
def chaos(kafka_cluster: Cluster, tmp_path: Path):  # type: ignore[no-untyped-def]
    deployed = make_deployment(kafka_cluster, tmp_path, (str(ROOT / "rss"),))
    yield deployed
    for worker in deployed.workers:
        worker.kill()


class Killer:
    def __init__(self, deployment: Deployment, ledger: Path) -> None:
        self.deployment = deployment
        env = {
            "OMNINODE_HANDLERS": HANDLERS,
            "CHAOS_LEDGER": str(ledger),
            "CHAOS_HOLD_S": "30",  # a held label: the order is cancelled while its child runs
            "OMNINODE_WORKER_CONCURRENCY": "32",  # held labels await; others go on
        }
        self.workers = [deployment.worker(name, **env) for name in ("a", "b")]
        self.kills = 0
        self.wipes = 0
        self.random = random.Random(20261124)

    def kill_one(self) -> None:
        victim = self.random.choice(self.workers)
        victim.kill()  # SIGKILL
        self.kills += 1
        if self.random.random() < 0.25:
            shutil.rmtree(victim.data_dir, ignore_errors=True)
            self.wipes += 1
        victim.start()


def test_no_instance_is_lost_or_advanced_twice_under_sigkill(chaos: Deployment) -> None:
    deployment = chaos
    ledger = deployment.workdir / "ledger.sqlite"
    killer = Killer(deployment, ledger)
    for worker in killer.workers:
        worker.wait_ready()
    plan = {f"{KINDS[n % 10]}-{n}": KINDS[n % 10] for n in range(INSTANCES)}
    started = time.monotonic()

    latest: dict[str, dict] = {}  # the last instance view seen of each instance
    finished = asyncio.run(_run_chaos(deployment, killer, plan, started, latest))
    elapsed = time.monotonic() - started
    for worker in killer.workers:
        assert worker.process is not None and worker.process.poll() is None

    assert killer.kills >= KILLS
    unfinished = _unfinished(plan, latest)
    assert finished, (
        f"not all instances finished within {DEADLINE_S}s; {len(unfinished)} did not, e.g.\n"
        + _where_they_stopped(deployment, unfinished[:10], latest)
        + f"\n{deployment.logs()}"
    )
    report = _verify(deployment, plan, ledger)
    report.update(
        instances=INSTANCES,
        kills=killer.kills,
        wiped_datadirs=killer.wipes,
        elapsed_s=round(elapsed, 1),
    )
    print("\nchaos:", "  ".join(f"{k}={v}" for k, v in report.items()))


def _unfinished(plan: dict[str, str], latest: dict[str, dict]) -> list[str]:
    """Planned instances whose last view is still active (or that have no view yet), and
    the children of finished ones that are still active."""
    parents = [i for i in plan if latest.get(i, {}).get("status", "active") == "active"]
    children = [
        child["key"].partition(":")[2]
        for i in plan
        if i not in parents
        for child in latest[i].get("children", [])
    ]
    return parents + [c for c in children if latest.get(c, {}).get("status", "active") == "active"]


def _where_they_stopped(deployment: Deployment, instances: list[str], latest: dict) -> str:
    """Per instance: its last view, how far its journal and snapshot got, where its events
    are and whether any was dead-lettered (a view behind the journal points at the
    projector; events that are there but never journaled, at the reducer)."""
    settings = deployment.settings

    def read(topic: str) -> list:  # type: ignore[type-arg]
        return [r for r in asyncio.run(read_topic(settings, topic)) if r.key is not None]

    journal: dict[str, int] = defaultdict(int)
    for record in read(settings.topic(topics.JOURNAL)):
        key = record.key.decode()
        journal[key] = max(journal[key], decode_journal(record.value).seq)
    snapshots = {
        r.key.decode(): decode_stored(r.value).snapshot.seq
        for r in read(settings.changelog_topic(topics.SNAPSHOT_TABLE))
    }
    events: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for record in read(settings.topic(topics.EVENTS)):
        events[record.key.decode()].append((record.partition, record.offset))
    dead = Counter(r.key.decode() for r in read(settings.topic(topics.DEAD_LETTERS)))
    lines = []
    for instance in instances:
        workflow = WORKFLOW.get(instance.split("-")[0], "shipment")
        key = f"{workflow}:{instance}"
        view = latest.get(instance)
        seen = "no view" if view is None else f"view seq={view['seq']} {view['configuration']}"
        lines.append(
            f"{instance}: {seen}, journal seq={journal.get(key)}, "
            f"snapshot seq={snapshots.get(key)}, events (partition, offset)={events.get(key)}, "
            f"dead letters={dead.get(key, 0)}"
        )
    return "\n".join(lines)


async def _run_chaos(
    deployment: Deployment,
    killer: Killer,
    plan: dict[str, str],
    started: float,
    latest: dict[str, dict],
) -> bool:
    settings = deployment.settings
    events_topic = settings.topic(topics.EVENTS)
    await produce(settings, [(events_topic, b"order_fulfillment:bad", b) for b in BAD_INPUTS])
    waves = [list(plan)[i : i + 25] for i in range(0, len(plan), 25)]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(_follow_views(deployment, plan, latest, stop))]

    async def feed() -> None:
        for wave in waves:
            await send_events(settings, [e for i in wave for e in opening_events(plan[i], i)])
            await asyncio.sleep(2.0)

    async def kill() -> None:
        while killer.kills < KILLS and time.monotonic() - started < DEADLINE_S:
            await asyncio.sleep(killer.random.uniform(1.0, 3.0))
            killer.kill_one()

    tasks += [asyncio.create_task(feed()), asyncio.create_task(kill())]
    try:
        while time.monotonic() - started < DEADLINE_S:
            if killer.kills >= KILLS and not _unfinished(plan, latest):
                return True
            await asyncio.sleep(1.0)
        return False
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _follow_views(
    deployment: Deployment,
    plan: dict[str, str],
    latest: dict[str, dict],
    stop: asyncio.Event,
) -> None:
    """React to the instance projection: decide orders at picking, keep each last view."""
    settings = deployment.settings
    topic = settings.topic(topics.INSTANCE_VIEWS)
    consumer = AIOKafkaConsumer(**settings.consumer_options(), enable_auto_commit=False)
    await consumer.start()
    acted: set[str] = set()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=500)
            for messages in batch.values():
                for message in messages:
                    view = codec("omninode.InstanceView").decode(message.value)
                    latest[view["instance_id"]] = view
                    await _react(settings, plan, view, acted)
    finally:
        await consumer.stop()


async def _react(settings, plan, view, acted) -> None:  # type: ignore[no-untyped-def]
    instance = view["instance_id"]
    kind = plan.get(instance)
    if kind is None or view["status"] != "active":
        return
    if (
        kind in ("order", "cancel", "hold")
        and "fulfilment.packing.picking" in view["configuration"]
        and instance not in acted
    ):
        acted.add(instance)
        decision = "CANCEL_REQUESTED" if kind == "cancel" else "PICKED"
        event = new_event("order_fulfillment", instance, decision, None, f"{instance}:{decision}")
        await send_events(settings, [event])
    if kind == "hold" and "shipping" in view["configuration"] and f"{instance}:x" not in acted:
        acted.add(f"{instance}:x")  # cancelled while its shipment child is running
        event = new_event(
            "order_fulfillment", instance, "CANCEL_REQUESTED", None, f"{instance}:CANCEL"
        )
        await send_events(settings, [event])


def _check_instance(
    registry: ChartRegistry,
    key: str,
    seqs: dict[int, bytes],
    snapshots: dict[str, bytes],
    expected: tuple[str, tuple[str, ...]],
) -> tuple[Snapshot, set[str]]:
    """A gapless journal with one $start, the expected end, and a replay that gives the live
    snapshot bit for bit; returns the snapshot and the effects its journal dispatched."""
    assert sorted(seqs) == list(range(1, len(seqs) + 1)), f"{key}: gap in {sorted(seqs)}"
    records: list[JournalRecord] = [decode_journal(seqs[s]) for s in sorted(seqs)]
    assert [r.event.type for r in records].count("$start") == 1, key  # started once
    live = decode_stored(snapshots[key]).snapshot
    assert (live.status, live.configuration) == expected, key
    replayed = replay(registry.get(key.partition(":")[0], live.version), records)
    assert replayed.snapshot is not None and dumps(replayed.snapshot) == dumps(live), key
    effects = {c.command_id for _, cs in replayed.commands for c in cs if c.kind == "effect"}
    return live, effects


def _settled(settings: Settings, tries: int = 20) -> tuple[list, dict[str, bytes]]:  # type: ignore[type-arg]
    """The journal and the latest snapshots, read once no step lands between the two reads.

    The workers keep running after every instance has finished: a handler's answer that
    comes after its instance was cancelled is still applied (as an ignored step, with a
    journal record). A step between reading the journal and reading the snapshots would
    show a snapshot one seq ahead of its journal, so both are read again (at most ``tries``
    times, a second apart) until every snapshot's seq is its journal's last one."""
    for _ in range(tries):
        journal = asyncio.run(read_topic(settings, settings.topic(topics.JOURNAL)))
        changelog = settings.changelog_topic(topics.SNAPSHOT_TABLE)
        snapshots = {r.key.decode(): r.value for r in asyncio.run(read_topic(settings, changelog))}
        last_seq: dict[str, int] = defaultdict(int)
        for record in journal:
            key = record.key.decode()
            last_seq[key] = max(last_seq[key], decode_journal(record.value).seq)
        if all(decode_stored(v).snapshot.seq == last_seq[k] for k, v in snapshots.items() if v):
            break
        time.sleep(1.0)
    return journal, snapshots


def _verify(deployment: Deployment, plan: dict[str, str], ledger: Path) -> dict[str, object]:
    settings = deployment.settings
    import_handlers([str(ROOT / "rss" / "handlers.py")])  # the charts' guard, for replay
    registry = ChartRegistry([read_chart(p) for p in sorted((ROOT / "rss").glob("*.yaml"))])
    journal, snapshots = _settled(settings)
    by_key: dict[str, dict[int, bytes]] = defaultdict(dict)
    re_emitted = 0
    for record in journal:
        seq = decode_journal(record.value).seq
        first = by_key[record.key.decode()].setdefault(seq, record.value)
        if first is not record.value:
            re_emitted += 1
            assert first == record.value, f"{record.key!r} seq {seq}: two different records"

    dispatched: set[str] = set()
    children = 0
    for instance, kind in plan.items():
        key = f"{WORKFLOW[kind]}:{instance}"
        live, effects = _check_instance(registry, key, by_key[key], snapshots, EXPECTED[kind])
        dispatched |= effects
        if kind in CHILD_EXPECTED:  # its shipment child: one, started once, ended as predicted
            (child,) = live.children
            expected = CHILD_EXPECTED[kind]
            _, effects = _check_instance(
                registry, child.key, by_key[child.key], snapshots, expected
            )
            dispatched |= effects
            children += 1

    db = sqlite3.connect(ledger)
    applied = Counter(key for (key,) in db.execute("SELECT key FROM applied"))
    invocations = Counter(key for (key,) in db.execute("SELECT key FROM invocations"))
    assert set(applied) == dispatched  # none lost, none invented
    assert all(n == 1 for n in applied.values())
    letters = [
        decode_dead_letter(r.value)
        for r in asyncio.run(read_topic(settings, settings.topic(topics.DEAD_LETTERS)))
    ]
    bad = sorted(d["value"] or b"" for d in letters)
    assert bad == sorted(BAD_INPUTS), [d["reason"] for d in letters]
    return {
        "children": children,
        "journal_records": len(journal),
        "re_emitted_journal_records": re_emitted,
        "effects_dispatched": len(dispatched),
        "effects_applied_once": len(applied),
        "handler_invocations": sum(invocations.values()),
        "handler_reruns_after_crash": sum(n - 1 for n in invocations.values()),
        "dead_letters": len(letters),
    }
