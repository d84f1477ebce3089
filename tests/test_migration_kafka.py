"""Changing a workflow while it runs, on a real broker, as an operator does it.

200 document_approval instances run on version 1 through two workers: most are half-way
through their review, some are approved and waiting for their (held) publication. Version
2 is deployed beside version 1 (the workers restart with both files), then
``omninode migrate plan`` and ``omninode migrate apply`` move the reviews onto version 2.
Version 2 has no place for the approved ones (``approved`` became ``publishing``): the plan
says they cannot be mapped, they stay on version 1 and still finish there. Every migrated
instance finishes on version 2 in the state the simulator predicts for the same events,
and ``omninode replay`` then replays every journal, ``$migrate`` steps included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from app.core.snapshot import Snapshot
from app.infra import topics
from app.infra.control import new_event, send_events
from app.infra.instance_store import decode_stored
from app.infra.kafka_client import read_topic
from app.infra.worker_process import worker_environment
from tests.conftest import ROOT, Deployment
from tests.test_kafka_runtime import in_states

pytestmark = pytest.mark.kafka

INSTANCES = int(os.environ.get("MIGRATION_INSTANCES", "200"))
HELD = 10  # approved before the deploy, their publication held: cannot be mapped
V2 = str(ROOT / "tests" / "fixtures" / "migration" / "document_approval.v2.yaml")
HANDLERS = str(ROOT / "tests" / "fixtures" / "chaos" / "chaos_handlers.py")
WORKFLOW = "document_approval"


def test_a_running_fleet_moves_to_version_2_and_the_unmappable_finish_on_1(
    deployment: Deployment,
) -> None:
    env = _worker_env(deployment)
    reviews = [f"doc-{n}" for n in range(INSTANCES - HELD)]
    held = [f"hold-{n}" for n in range(HELD)]
    workers = [deployment.worker(name, **env) for name in ("a", "b")]
    for worker in workers:
        worker.wait_ready()
    deployment.run(send_events(deployment.settings, _opening(reviews, held)))
    _wait(deployment, reviews, in_states("review.pending"), version=1)
    _wait(deployment, held, in_states("approved"), version=1)

    # Deploy version 2 beside version 1: the same workers, restarted with both files.
    for worker in workers:
        worker.kill()
    both = {**env, "OMNINODE_RSS_PATH": f"{ROOT / 'rss'}:{V2}"}
    workers = [deployment.worker(name, **both) for name in ("a", "b")]
    for worker in workers:
        worker.wait_ready()

    plan = _omninode(deployment, both, "migrate", "plan", WORKFLOW, "--to", "2", "--json")
    assert plan.returncode == 1, plan.stderr  # the held ones cannot be mapped
    report = json.loads(plan.stdout)
    assert report["counts"]["agrees"] == len(reviews), report["counts"]
    assert report["counts"]["cannot-map"] == HELD, report["counts"]
    apply = _omninode(
        deployment, both, "migrate", "apply", WORKFLOW, "--to", "2", "--timeout", "200"
    )
    assert f"{len(reviews)} of {INSTANCES} instances now run on version 2" in apply.stdout, (
        apply.stdout + apply.stderr
    )
    (Path(env["CHAOS_RELEASE"])).touch()  # the held publications complete, on version 1
    migrated = _wait(deployment, reviews, in_states("review.collecting"), version=2)
    assert all(s.data["priority"] == "normal" for s in migrated)

    second = [new_event(WORKFLOW, i, "APPROVE", {"reviewer": "bo"}, f"{i}:bo") for i in reviews]
    deployment.run(send_events(deployment.settings, second))
    finished = _wait(deployment, reviews, in_states("published", status="done"), version=2)
    predicted = _simulated_end()
    assert {(s.status, s.configuration, s.version) for s in finished} == {predicted}
    _wait(deployment, held, in_states("published", status="done"), version=1)

    replayed = _omninode(deployment, both, "replay", WORKFLOW)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert f"{INSTANCES} instances replayed: {INSTANCES} identical" in replayed.stdout


def _worker_env(deployment: Deployment) -> dict[str, str]:
    return {
        "OMNINODE_HANDLERS": HANDLERS,
        "CHAOS_LEDGER": str(deployment.workdir / "ledger.sqlite"),
        "CHAOS_RELEASE": str(deployment.workdir / "release"),
        "CHAOS_HOLD_S": "600",
        "OMNINODE_WORKER_CONCURRENCY": "32",
    }


def _opening(reviews: list[str], held: list[str]) -> list:  # type: ignore[type-arg]
    events = []
    for instance in [*reviews, *held]:
        title = instance if instance.startswith("hold-") else f"report {instance}"
        events += [
            new_event(WORKFLOW, instance, "$start", {"title": title}, f"{instance}:start"),
            new_event(WORKFLOW, instance, "SUBMIT", None, f"{instance}:submit"),
            new_event(WORKFLOW, instance, "APPROVE", {"reviewer": "ana"}, f"{instance}:ana"),
        ]
    for instance in held:
        events.append(
            new_event(WORKFLOW, instance, "APPROVE", {"reviewer": "bo"}, f"{instance}:bo")
        )
    return events


def _wait(  # type: ignore[no-untyped-def]
    deployment: Deployment, ids: list[str], check, version: int, timeout_s: float = 120
) -> list[Snapshot]:
    """Every instance of ``ids`` on ``version`` and passing ``check``, reading the snapshot
    changelog once per round (latest record per key)."""
    deadline = time.monotonic() + timeout_s
    latest: dict[str, Snapshot] = {}
    while True:
        records = deployment.run(
            read_topic(
                deployment.settings, deployment.settings.changelog_topic(topics.SNAPSHOT_TABLE)
            )
        )
        for record in records:
            if record.key is not None and record.value:
                latest[record.key.decode()] = decode_stored(record.value).snapshot
        found = [latest.get(f"{WORKFLOW}:{i}") for i in ids]
        missing = [
            i
            for i, s in zip(ids, found, strict=True)
            if s is None or s.version != version or not check(s)
        ]
        if not missing:
            return [s for s in found if s is not None]
        assert time.monotonic() < deadline, (
            f"{len(missing)} not there on v{version}, e.g. {missing[:5]}"
        )
        time.sleep(1.0)


def _omninode(
    deployment: Deployment, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
        env=worker_environment(deployment.settings, env),
    )


def _simulated_end() -> tuple[str, tuple[str, ...], int]:
    """What the simulator says one review ends as: the same events, the migration between
    the two approvals, the publication answered."""
    lines = [
        {"type": "$start", "payload": {"title": "t"}, "version": 1},
        {"type": "SUBMIT"},
        {"type": "APPROVE", "payload": {"reviewer": "ana"}},
        {"type": "$migrate", "payload": {"to": 2}},
        {"type": "APPROVE", "payload": {"reviewer": "bo"}},
        {"type": "publish_document.done", "payload": {"url": "u"}},
    ]
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "script.jsonl"
        script.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
        chart = str(ROOT / "rss" / f"{WORKFLOW}.yaml")
        result = subprocess.run(
            [sys.executable, "-m", "app.cli.main", "simulate", chart, str(script), "--chart", V2],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
            timeout=60,
        )
    last = json.loads(result.stdout.splitlines()[-1])
    return last["status"], tuple(last["configuration"]), last["version"]
