"""End to end on a real broker: faust worker processes run the example workflows.

Every test here starts real ``faust -A app.main worker`` processes against the session's
broker (see conftest.py) and talks to them only through topics, as users do.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from app.core.snapshot import Snapshot
from app.infra import topics
from app.infra.avro import codec
from app.infra.control import new_event, read_history, read_snapshot, send_events, wait_for
from app.infra.demo import demo_runs, drive
from app.infra.kafka_client import produce, read_key, read_topic
from app.infra.settings import Settings
from app.infra.wire import decode_dead_letter, encode_event
from tests.conftest import ROOT, Cluster, Deployment, make_deployment

pytestmark = pytest.mark.kafka


def order(instance_id: str) -> list:
    return [
        new_event(
            "order_fulfillment",
            instance_id,
            "$start",
            {"order_id": instance_id, "total": 40, "items": ["book"]},
        )
    ]


def in_states(*states: str, status: str = "active") -> Callable[[Snapshot], bool]:
    return lambda s: s.status == status and set(states) <= set(s.configuration)


PICKING = in_states("fulfilment.invoicing.invoiced", "fulfilment.packing.picking")
SHIPPED = in_states("shipped", status="done")


async def start_orders_and_pay(settings: Settings, ids: list[str]) -> None:
    await send_events(settings, [e for i in ids for e in order(i)])
    await send_events(
        settings, [new_event("order_fulfillment", i, "PAY", {"amount": 40}) for i in ids]
    )


async def all_reach(
    settings: Settings, ids: list[str], check: Callable[[Snapshot], bool], timeout_s: float = 90.0
) -> list[Snapshot]:
    try:
        return list(
            await asyncio.gather(
                *(wait_for(settings, "order_fulfillment", i, check, timeout_s) for i in ids)
            )
        )
    except TimeoutError as exc:
        # Say where the missing event went: dead letters, and the instance's journal.
        letters = [
            decode_dead_letter(r.value)
            for r in await read_topic(settings, settings.topic(topics.DEAD_LETTERS))
        ]
        journals = {
            i: [(r.seq, r.event.type) for r in await read_history(settings, "order_fulfillment", i)]
            for i in ids
        }
        reasons = [(d["instance_id"], d["event_type"], d["reason"]) for d in letters]
        raise AssertionError(f"{exc}\ndead letters: {reasons}\njournals: {journals}") from exc


def test_the_three_examples_run_to_their_final_states(deployment: Deployment) -> None:
    deployment.worker("w1").wait_ready()
    settings = deployment.settings

    async def scenario() -> list[Snapshot]:
        runs = [drive(settings, run, f"{run.workflow}-{n}") for run in demo_runs() for n in (1, 2)]
        return list(await asyncio.gather(*runs))

    finals = deployment.run(scenario())
    got = {(s.workflow, s.status, tuple(s.configuration)) for s in finals}
    assert got == {
        ("order_fulfillment", "done", ("shipped",)),
        ("document_approval", "done", ("published",)),
        ("loan_application", "done", ("funded",)),
    }, deployment.logs()
    for snapshot in finals:
        history = deployment.run(read_history(settings, snapshot.workflow, snapshot.instance_id))
        assert [r.seq for r in history] == list(range(1, snapshot.seq + 1))
        assert history[0].event.type == "$start"
        assert history[-1].status == "done"
    # The loan ran a compute (credit_score) and an awaited effect (disburse_funds) for real.
    loan = next(s for s in finals if s.workflow == "loan_application")
    assert loan.data["score"] == 838
    # Projections (they follow the journal asynchronously): the instance read model ...
    keys = {f"{s.workflow}:{s.instance_id}": s for s in finals}

    def views_caught_up() -> dict[str, dict] | None:
        views = _latest(
            deployment.run(read_topic(settings, settings.topic(topics.INSTANCE_VIEWS))),
            "omninode.InstanceView",
        )
        done = all(views.get(k, {}).get("seq") == s.seq for k, s in keys.items())
        return views if done else None

    views = _eventually(views_caught_up)
    for key, snapshot in keys.items():
        assert views[key]["status"] == "done"
        assert views[key]["configuration"] == list(snapshot.configuration)

    # ... and the per-state counts.
    def counts_caught_up() -> dict[str, dict] | None:
        counts = _latest(
            deployment.run(read_topic(settings, settings.topic(topics.STATE_COUNTS))),
            "omninode.StateCount",
        )
        finals_counted = (
            "order_fulfillment:shipped",
            "document_approval:published",
            "loan_application:funded",
        )
        settled = all(counts.get(k, {}).get("count") == 2 for k in finals_counted)
        return counts if settled else None

    counts = _eventually(counts_caught_up)
    assert counts["order_fulfillment:shipped"]["count"] == 2
    assert counts["order_fulfillment:awaiting_payment"]["count"] == 0
    assert counts["loan_application:funded"]["count"] == 2


def _eventually(probe: Callable[[], dict | None], timeout_s: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
        time.sleep(0.5)
    raise AssertionError(f"not reached in {timeout_s}s: {probe.__name__}")


def _latest(records: list, schema: str) -> dict[str, dict]:
    return {r.key.decode(): codec(schema).decode(r.value) for r in records}


def test_two_workers_share_the_partitions_and_one_takes_over(deployment: Deployment) -> None:
    first, second = deployment.worker("a"), deployment.worker("b")
    first.wait_ready()
    second.wait_ready()
    settings = deployment.settings
    ids = [f"o-{n}" for n in range(16)]
    deployment.run(start_orders_and_pay(settings, ids))
    deployment.run(all_reach(settings, ids, PICKING))
    for worker in (first, second):
        assert b"charged order_fulfillment:" in worker.log_path.read_bytes(), deployment.logs()

    assert second.stop() == 0
    deployment.run(
        send_events(settings, [new_event("order_fulfillment", i, "PICKED") for i in ids])
    )
    finals = deployment.run(all_reach(settings, ids, SHIPPED))
    assert len(finals) == 16


def test_reducer_and_handlers_run_in_separate_processes_by_role(deployment: Deployment) -> None:
    handlers = str(ROOT / "rss" / "handlers.py")
    reducer = deployment.worker(
        "reducer", OMNINODE_ROLES="reducer,projector", OMNINODE_HANDLERS=handlers
    )
    runner = deployment.worker(
        "handlers", OMNINODE_ROLES="effects,computes", OMNINODE_HANDLERS=handlers
    )
    reducer.wait_ready()
    runner.wait_ready()
    order_run = next(run for run in demo_runs() if run.workflow == "order_fulfillment")
    final = deployment.run(drive(deployment.settings, order_run, "split-1"))
    assert (final.status, final.configuration) == ("done", ("shipped",))
    assert b"charged order_fulfillment:split-1" in runner.log_path.read_bytes()
    assert b"charged order_fulfillment:split-1" not in reducer.log_path.read_bytes()


@pytest.mark.parametrize("wipe", [False, True], ids=["rocksdb-kept", "rocksdb-wiped"])
def test_a_restarted_worker_recovers_every_snapshot(deployment: Deployment, wipe: bool) -> None:
    settings = deployment.settings
    worker = deployment.worker("w")
    worker.wait_ready()
    ids = [f"r-{n}" for n in range(8)]
    deployment.run(start_orders_and_pay(settings, ids))
    before = {s.instance_id: s for s in deployment.run(all_reach(settings, ids, PICKING))}
    assert worker.stop() == 0
    if wipe:
        shutil.rmtree(worker.data_dir)
    deployment.worker("w").wait_ready()

    deployment.run(
        send_events(settings, [new_event("order_fulfillment", i, "PICKED") for i in ids])
    )
    after = deployment.run(all_reach(settings, ids, SHIPPED))
    for snapshot in after:
        # The snapshot was restored, not restarted: data and seq carry on from before.
        old = before[snapshot.instance_id]
        assert snapshot.data["paid"] == 40 and snapshot.data["invoice"] == old.data["invoice"]
        assert snapshot.seq > old.seq
    letters = deployment.run(read_topic(settings, settings.topic(topics.DEAD_LETTERS)))
    assert letters == [], [decode_dead_letter(r.value)["reason"] for r in letters]


def test_a_snapshot_that_outlived_its_journal_record_and_commands_gets_them_resent(
    deployment: Deployment,
) -> None:
    settings = deployment.settings
    fault = ROOT / "tests" / "fixtures" / "faults" / "crash_after_snapshot.py"
    env = {
        "OMNINODE_HANDLERS": f"{ROOT / 'rss' / 'handlers.py'},{fault}",
        "CRASH_MARKER": str(deployment.workdir / "crashed"),
    }
    worker = deployment.worker("w", **env)
    worker.wait_ready()
    deployment.run(send_events(settings, order("crash-1")))
    deployment.run(
        wait_for(settings, "order_fulfillment", "crash-1", in_states("awaiting_payment"))
    )
    deployment.run(
        send_events(settings, [new_event("order_fulfillment", "crash-1", "PAY", {"amount": 40})])
    )
    assert worker.process is not None and worker.process.wait(60) == -9  # SIGKILLed itself
    # The fault happened as designed: the snapshot (seq 2) is on the changelog, its journal
    # record and its charge_card command are not.
    crashed = deployment.run(read_snapshot(settings, "order_fulfillment", "crash-1"))
    assert crashed is not None and (crashed.seq, crashed.configuration) == (2, ("charging",))
    assert [
        r.seq for r in deployment.run(read_history(settings, "order_fulfillment", "crash-1"))
    ] == [1]
    shutil.rmtree(worker.data_dir)
    deployment.worker("w", **env).wait_ready()

    deployment.run(wait_for(settings, "order_fulfillment", "crash-1", PICKING, 60))
    history = deployment.run(read_history(settings, "order_fulfillment", "crash-1"))
    assert [r.seq for r in history] == list(range(1, len(history) + 1))
    assert [r.event.type for r in history[:3]] == ["$start", "PAY", "charge_card.done"]


def test_bad_input_lands_in_dead_letters_and_the_agent_keeps_going(
    deployment: Deployment,
) -> None:
    deployment.worker("w").wait_ready()
    settings = deployment.settings
    events = settings.topic(topics.EVENTS)
    unknown_type = new_event("no_such_workflow", "x-1", "$start")
    unknown_instance = new_event("order_fulfillment", "never-started", "PAY", {"amount": 1})
    bad_payload = new_event("order_fulfillment", "bad-1", "$start", {"order_id": "", "total": "x"})
    wrong_key = new_event("order_fulfillment", "k-1", "$start", {"order_id": "k", "total": 1})
    bad = [
        (events, b"order_fulfillment:garbage", b"\x00\x00not avro at all"),
        (events, unknown_type.key.encode(), encode_event(unknown_type)),
        (events, unknown_instance.key.encode(), encode_event(unknown_instance)),
        (events, bad_payload.key.encode(), encode_event(bad_payload)),
        (events, b"order_fulfillment:other", encode_event(wrong_key)),
    ]
    # And fuzz on the wire: random bytes under random keys (seeded, so a failure repeats).
    rng = random.Random(20261124)
    fuzz = [
        (events, rng.randbytes(rng.randint(0, 24)), rng.randbytes(rng.randint(0, 200)))
        for _ in range(30)
    ]
    deployment.run(produce(settings, bad + fuzz))
    deployment.run(send_events(settings, order("good-1")))
    deployment.run(wait_for(settings, "order_fulfillment", "good-1", in_states("awaiting_payment")))

    letters = [
        decode_dead_letter(r.value)
        for r in deployment.run(read_topic(settings, settings.topic(topics.DEAD_LETTERS)))
    ]
    # Each record is there once, with its original key and bytes and where it came from.
    got = sorted((d["source_topic"], d["key"] or b"", d["value"] or b"") for d in letters)
    assert got == sorted(bad + fuzz), [letter["reason"] for letter in letters]
    reasons = {letter["stage"] + ": " + letter["reason"] for letter in letters}
    assert any(r.startswith("decode: undecodable event") for r in reasons), reasons
    assert any(r.startswith("route: unknown workflow type 'no_such_workflow'") for r in reasons)
    assert any(r.startswith("step: no such instance") for r in reasons), reasons
    assert any(r.startswith("step: payload of $start fails its declared schema") for r in reasons)
    assert any(r.startswith("route: record key b'order_fulfillment:other'") for r in reasons)
    assert deployment.run(read_snapshot(settings, "order_fulfillment", "never-started")) is None


@pytest.fixture
def timer_deployment(kafka_cluster: Cluster, tmp_path: Path):  # type: ignore[no-untyped-def]
    deployed = make_deployment(
        kafka_cluster, tmp_path, (str(ROOT / "tests" / "fixtures" / "rss_timers"),)
    )
    yield deployed
    for worker in deployed.workers:
        worker.stop()


def test_timers_fire_at_their_deadline_and_cancelled_ones_never(
    timer_deployment: Deployment,
) -> None:
    deployment = timer_deployment
    settings = deployment.settings
    deployment.worker("w").wait_ready()
    start = [new_event("timer_check", i, "$start") for i in ("fires", "cancelled")]
    deployment.run(send_events(settings, start))
    deployment.run(send_events(settings, [new_event("timer_check", "cancelled", "LEAVE")]))

    fired = deployment.run(
        wait_for(settings, "timer_check", "fires", in_states("timed_out", status="done"), 30)
    )
    history = deployment.run(read_history(settings, "timer_check", "fires"))
    timer = history[-1].event
    assert timer.type == "$after.waiting.0" and fired.seq == 2
    # The event time of a firing is its deadline: 2 s after $start's time.
    started = history[0].event.occurred_at
    assert _ms(timer.occurred_at) - _ms(started) == 2000

    time.sleep(3)  # well past the cancelled timer's deadline
    left = deployment.run(read_history(settings, "timer_check", "cancelled"))
    assert [r.event.type for r in left] == ["$start", "LEAVE"]
    deployment.run(send_events(settings, [new_event("timer_check", "cancelled", "FINISH")]))
    deployment.run(
        wait_for(settings, "timer_check", "cancelled", in_states("finished", status="done"))
    )
    armed = deployment.run(
        read_key(settings, settings.changelog_topic(topics.TIMER_TABLE), b"timer_check:cancelled")
    )
    assert armed and armed[-1].value is None  # the 60 s timer was removed when `left` exited


def test_a_timer_fires_once_after_a_crash_in_the_middle_of_its_wait(
    timer_deployment: Deployment,
) -> None:
    deployment = timer_deployment
    settings = deployment.settings
    worker = deployment.worker("w")
    worker.wait_ready()
    deployment.run(send_events(settings, [new_event("timer_check", "crash", "$start")]))
    deployment.run(wait_for(settings, "timer_check", "crash", in_states("waiting")))
    worker.kill()  # SIGKILL before the 2 s deadline
    shutil.rmtree(worker.data_dir)  # and the new worker starts with no local state
    deployment.worker("w").wait_ready()

    fired = deployment.run(
        wait_for(settings, "timer_check", "crash", in_states("timed_out", status="done"), 30)
    )
    time.sleep(2)  # time for a second firing, if there were one
    history = deployment.run(read_history(settings, "timer_check", "crash"))
    assert [r.event.type for r in history] == ["$start", "$after.waiting.0"]
    assert fired.seq == 2
    assert _ms(history[1].event.occurred_at) - _ms(history[0].event.occurred_at) == 2000


def _ms(instant: str) -> int:
    from app.core.durations import parse_instant_ms  # noqa: PLC0415

    return parse_instant_ms(instant)
