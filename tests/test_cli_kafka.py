"""The ``omninode`` commands that talk to Kafka, run as a user runs them (subprocesses)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time

import pytest

from app.infra import topics
from app.infra.avro import codec
from app.infra.kafka_client import produce
from app.infra.worker_process import worker_environment
from tests.conftest import ROOT, Deployment

pytestmark = pytest.mark.kafka


def omninode(deployment: Deployment, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
        env=worker_environment(deployment.settings),
    )


def test_broker_prints_its_address_serves_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli.main", "broker", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("embedded broker (Tansu, in memory) listening on 127.0.0.1:")
        port = int(first.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        assert "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:" in process.stdout.readline()
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
        assert "stopped (SIGTERM)" in process.stdout.read()
    finally:
        process.kill()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_topics_plan_and_apply_are_idempotent(deployment: Deployment) -> None:
    plan = omninode(deployment, "topics", "plan")
    assert plan.returncode == 0, plan.stderr
    lines = plan.stdout.splitlines()
    assert len(lines) == 8 and all(line.startswith("ok ") for line in lines), plan.stdout
    again = omninode(deployment, "topics", "apply")
    assert again.returncode == 0 and "created" not in again.stdout


def test_start_send_status_history_and_projections(deployment: Deployment) -> None:
    deployment.worker("w").wait_ready()
    data = json.dumps({"order_id": "c-1", "total": 40, "items": ["pen"]})
    started = omninode(
        deployment, "start", "order_fulfillment", "c-1", "--data", data, "--event-id", "start-c-1"
    )
    assert started.returncode == 0, started.stderr
    assert "sent $start to order_fulfillment:c-1 (event id start-c-1)" in started.stdout
    sent = omninode(
        deployment, "send", "order_fulfillment", "c-1", "PAY", "--data", '{"amount": 40}'
    )
    assert sent.returncode == 0, sent.stderr

    snapshot = _poll_status(deployment, "fulfilment.packing.picking")
    assert snapshot["data"]["paid"] == 40 and snapshot["status"] == "active"
    human = omninode(deployment, "status", "order_fulfillment", "c-1")
    assert "order_fulfillment:c-1  v2  active" in human.stdout
    assert "states:  fulfilment.invoicing.invoiced, fulfilment.packing.picking" in human.stdout

    history = omninode(deployment, "history", "order_fulfillment", "c-1", "--json")
    rows = [json.loads(line) for line in history.stdout.splitlines()]
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    assert [r["event"]["type"] for r in rows[:3]] == ["$start", "PAY", "charge_card.done"]
    assert rows[0]["event"]["event_id"] == "start-c-1"

    # Re-sending the same event id is a redelivery: applied once, no new seq.
    omninode(
        deployment, "start", "order_fulfillment", "c-1", "--data", data, "--event-id", "start-c-1"
    )
    omninode(deployment, "send", "order_fulfillment", "c-1", "PICKED")
    final = _poll_status(deployment, "shipped")
    assert final["seq"] == len(rows) + 1 + 1  # + PICKED + ship.done
    # The shipment child: `status` shows it on the parent, and the parent on the child.
    (child,) = final["children"]
    assert child["status"] == "done" and child["workflow"] == "shipment"
    parent_view = omninode(deployment, "status", "order_fulfillment", "c-1")
    assert f"child:   ship shipment:{child['instance_id']} done" in parent_view.stdout
    child_view = omninode(deployment, "status", "shipment", child["instance_id"])
    assert "parent:  order_fulfillment:c-1 (invoke ship, " in child_view.stdout
    assert "shipment:" + child["instance_id"] + "  v1  done" in child_view.stdout

    check = _poll(lambda: omninode(deployment, "projections", "check"), lambda r: r.returncode == 0)
    assert "instance views:       2 (0 differ from published)" in check.stdout
    # A read model that drifted from the journal is found, and a rebuild repairs it.
    wrong = {
        **json.loads(omninode(deployment, "status", "order_fulfillment", "c-1", "--json").stdout),
        "status": "failed",
    }
    view = {
        "workflow_type": "order_fulfillment",
        "instance_id": "c-1",
        "workflow_version": 2,
        "status": wrong["status"],
        "configuration": wrong["configuration"],
        "seq": wrong["seq"],
        "updated_at": wrong["updated_at"],
    }
    topic = deployment.settings.topic(topics.INSTANCE_VIEWS)
    deployment.run(
        produce(
            deployment.settings,
            [(topic, b"order_fulfillment:c-1", codec("omninode.InstanceView").encode(view))],
        )
    )
    drifted = omninode(deployment, "projections", "check")
    assert drifted.returncode == 1 and "2 (1 differ from published)" in drifted.stdout
    rebuilt = omninode(deployment, "projections", "rebuild")
    assert rebuilt.returncode == 0 and "published every view and count" in rebuilt.stdout
    assert omninode(deployment, "projections", "check").returncode == 0
    assert omninode(deployment, "dlq", "list").stdout == ""


def test_cli_errors_are_one_line_with_an_exit_code(deployment: Deployment) -> None:
    missing = omninode(deployment, "status", "order_fulfillment", "nobody")
    assert missing.returncode == 1
    assert missing.stderr.strip() == "omninode: no instance order_fulfillment:nobody"
    bad_json = omninode(deployment, "send", "order_fulfillment", "x", "PAY", "--data", "{oops")
    assert bad_json.returncode == 2 and bad_json.stderr.startswith("omninode: ")
    assert "Traceback" not in bad_json.stderr
    not_object = omninode(deployment, "send", "order_fulfillment", "x", "PAY", "--data", "[1]")
    assert not_object.returncode == 2
    assert not_object.stderr.strip() == "omninode: --data must be a JSON object"


def test_an_unreachable_cluster_is_a_clear_error(deployment: Deployment) -> None:
    env = {**worker_environment(deployment.settings), "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    result = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "status", "order_fulfillment", "x"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
        check=False,
    )
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith("omninode: 127.0.0.1:1: ")
    assert len(result.stderr.splitlines()) == 1, result.stderr


def _poll_status(deployment: Deployment, state: str) -> dict:
    def status() -> dict:
        result = omninode(deployment, "status", "order_fulfillment", "c-1", "--json")
        return json.loads(result.stdout) if result.returncode == 0 else {}

    return _poll(status, lambda s: state in s.get("configuration", []))


def _poll(probe, done, timeout_s: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def test_dead_letters_can_be_listed_shown_and_replayed_after_a_fix(
    deployment: Deployment,
) -> None:
    deployment.worker("w").wait_ready()
    # PAY before the order exists: dead-lettered as "no such instance".
    early = omninode(
        deployment,
        "send",
        "order_fulfillment",
        "late-1",
        "PAY",
        "--data",
        '{"amount": 40}',
        "--event-id",
        "pay-late-1",
    )
    assert early.returncode == 0
    listed = _poll(
        lambda: omninode(deployment, "dlq", "list", "--stage", "step"),
        lambda r: r.stdout.strip() != "",
    )
    (line,) = listed.stdout.splitlines()
    letter_id = line.split()[0]
    assert "no such instance" in line
    shown = json.loads(omninode(deployment, "dlq", "show", letter_id).stdout)
    assert shown["record"]["type"] == "PAY" and shown["record"]["event_id"] == "pay-late-1"
    assert shown["instance_id"] == "late-1" and shown["stage"] == "step"

    data = json.dumps({"order_id": "late-1", "total": 40, "items": ["pen"]})
    omninode(deployment, "start", "order_fulfillment", "late-1", "--data", data)
    replayed = omninode(deployment, "dlq", "replay", letter_id)
    assert replayed.returncode == 0, replayed.stderr
    assert f"replayed {letter_id} to {deployment.settings.topic(topics.EVENTS)}" in replayed.stdout

    def status() -> dict:
        result = omninode(deployment, "status", "order_fulfillment", "late-1", "--json")
        return json.loads(result.stdout) if result.returncode == 0 else {}

    paid = _poll(status, lambda s: s.get("data", {}).get("paid") == 40)
    assert paid["data"]["paid"] == 40
    missing = omninode(deployment, "dlq", "replay", "9:999")
    assert missing.returncode == 1 and "no dead letter 9:999" in missing.stderr
