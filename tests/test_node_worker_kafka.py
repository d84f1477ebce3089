"""The Node.js worker example (``examples/node-worker``) on a real broker, beside a Python
worker serving another task queue of the same workflow.

``worker.js`` starts instances of ``greeting`` (``examples/node-worker/rss/greeting.yaml``),
serves ``compose_greeting`` on queue ``node`` and reads the instances projection until
they end; a ``faust -A app.main worker`` runs the reducer, the projector and the Python
``deliver_greeting`` (default queue). Checked from Kafka: every instance is ``done`` with
both handlers recorded in its data, and every answer to ``compose_greeting`` came from Node.

Skipped only where ``node`` is absent; the example's packages are installed with ``npm ci``
when ``node_modules`` is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.infra import topics
from app.infra.control import read_dead_letters, read_snapshot
from app.infra.kafka_client import apply_topics, read_topic
from app.infra.runtime import deployment_manifest, load_chart_registry
from app.infra.wire import decode_event
from tests.conftest import ROOT, Cluster, Deployment, make_deployment

NODE = shutil.which("node")
pytestmark = [
    pytest.mark.kafka,
    pytest.mark.skipif(
        NODE is None, reason="node is not installed: the Node.js worker example is not tested"
    ),
]

EXAMPLE = ROOT / "examples" / "node-worker"
INSTANCES = 6


@pytest.fixture(scope="module")
def node() -> str:
    """The ``node`` executable, with the example's packages installed (``npm ci``)."""
    assert NODE is not None
    if not (EXAMPLE / "node_modules" / "kafkajs").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("node is installed but npm is not: cannot install examples/node-worker")
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=EXAMPLE,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"npm ci in {EXAMPLE} failed:\n{done.stdout}\n{done.stderr}")
    return NODE


@pytest.fixture
def greeting(kafka_cluster: Cluster, tmp_path: Path) -> Iterator[Deployment]:
    deployed = make_deployment(kafka_cluster, tmp_path, (str(EXAMPLE / "rss"),))
    settings = deployed.settings  # as `omninode topics apply`: a command topic per queue
    manifest = deployment_manifest(settings, load_chart_registry(settings))
    assert settings.topic("omninode.commands.node") in {spec.name for spec in manifest.values()}
    deployed.run(apply_topics(settings, manifest))
    yield deployed
    for worker in deployed.workers:
        worker.stop()


def test_node_and_python_workers_serve_their_queues_of_one_workflow(
    node: str, greeting: Deployment
) -> None:
    settings = greeting.settings
    python = greeting.worker(
        "python",
        OMNINODE_ROLES="reducer,effects,projector",
        OMNINODE_HANDLERS=str(EXAMPLE / "handlers.py"),
    )
    python.wait_ready()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "OMNINODE_APP_ID": settings.app_id,
        "OMNINODE_PROFILE": settings.profile,
    }
    command = [node, "worker.js", "--instances", str(INSTANCES), "--timeout", "40"]
    run = subprocess.run(
        command, cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    output = f"stdout:\n{run.stdout}\nstderr:\n{run.stderr[-4000:]}\n{greeting.logs()}"
    assert run.returncode == 0, output
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["started"] == summary["done"] == INSTANCES, output
    assert summary["served"] == INSTANCES and summary["skipped"] == 0, output

    for instance_id in summary["instance_ids"]:
        snapshot = greeting.run(read_snapshot(settings, "greeting", instance_id))
        assert snapshot is not None and snapshot.status == "done", output
        assert snapshot.configuration == ("delivered",)
        assert snapshot.data["composed_by"] == "node", snapshot.data
        assert snapshot.data["delivered_by"] == "python", snapshot.data
        assert snapshot.data["greeting"] == f"Hello, guest {instance_id}!"

    # Every answer on the results topic, by dispatch: Node answered compose_greeting, and
    # the Python worker (which has no handler for it) answered nothing on queue `node`.
    results = greeting.run(read_topic(settings, settings.topic(topics.RESULTS)))
    answers: dict[str, set[tuple[str, str]]] = {}
    dispatches: dict[str, set[str]] = {}
    for record in results:
        event = decode_event(record.value)
        name = event.type.split(".")[0]
        answers.setdefault(name, set()).add((event.type, str(event.payload.get("served_by"))))
        dispatches.setdefault(name, set()).add(str(event.dispatch_id))
    assert answers == {
        "compose_greeting": {("compose_greeting.done", "node")},
        "deliver_greeting": {("deliver_greeting.done", "python")},
    }
    assert {name: len(ids) for name, ids in dispatches.items()} == {
        "compose_greeting": INSTANCES,
        "deliver_greeting": INSTANCES,
    }
    assert greeting.run(read_dead_letters(settings)) == []
