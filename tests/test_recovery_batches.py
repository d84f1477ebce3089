"""Changelog recovery restores every row when the changelog holds multi-record batches.

Faust's recovery reads a changelog up to the end offset the broker lists; the embedded
broker lists the last batch's base offset plus one, which made recovery crash or lose rows
until the local transport read end offsets from fetch responses (app/infra/end_offsets.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from app.infra.kafka_client import produce, read_topic
from app.infra.settings import Settings
from tests.conftest import ROOT, Cluster, create_topic

pytestmark = pytest.mark.kafka

BATCHES = (5, 3, 1, 7)  # sizes of the record batches written to the changelog


async def _fill_changelog(bootstrap: str, topic: str) -> None:
    await create_topic(bootstrap, topic, partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=200)
    await producer.start()
    try:
        row = 0
        for size in BATCHES:
            futures = []
            for _ in range(size):
                futures.append(
                    await producer.send(topic, b"v", key=f"row-{row:02d}".encode(), partition=0)
                )
                row += 1
            await producer.flush()  # one flush per group: one batch of `size` records
            await asyncio.gather(*futures)
    finally:
        await producer.stop()


def _ask_for_keys(settings: Settings, app_id: str, timeout_s: float = 60.0) -> list[str]:
    asyncio.run(produce(settings, [(f"{app_id}-queries", b"q", b"?")]))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answers = asyncio.run(read_topic(settings, f"{app_id}-answers"))
        if answers:
            return list(json.loads(answers[-1].value or b"[]"))
        time.sleep(0.5)
    raise AssertionError("the worker never answered")


def test_a_fresh_worker_restores_every_row_of_a_batched_changelog(
    kafka_cluster: Cluster, tmp_path: Path
) -> None:
    app_id = f"rows{uuid.uuid4().hex[:8]}"
    settings = Settings(
        bootstrap_servers=kafka_cluster.bootstrap_servers, profile=kafka_cluster.profile
    )
    asyncio.run(_fill_changelog(kafka_cluster.bootstrap_servers, f"{app_id}-rows-changelog"))
    env = {
        **os.environ,
        "ROWS_APP_ID": app_id,
        "ROWS_SCHEME": "omninode-local" if kafka_cluster.profile == "local" else "omninode",
        "KAFKA_BOOTSTRAP_SERVERS": kafka_cluster.bootstrap_servers,
        "PYTHONPATH": str(ROOT),
    }
    log_path = tmp_path / "rows.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "faust", "-A", "tests.fixtures.recovery.rows_app",
             "--datadir", str(tmp_path / "data"), "worker", "--without-web", "--loglevel", "info"],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
        )  # fmt: skip
    try:
        keys = _ask_for_keys(settings, app_id)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert keys == [f"row-{row:02d}" for row in range(sum(BATCHES))], log_path.read_text()[-3000:]
