"""Fixtures for tests that need a Kafka-protocol broker, over TCP, never a mock.

The session's broker is, in order: ``KAFKA_BOOTSTRAP_SERVERS`` if set; Apache Kafka in a
testcontainer where a Docker engine answers; else the embedded Tansu broker, started and
stopped here. Each test gets its own deployment (app id = topic prefix), so tests sharing
the broker never see each other's records.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from app.infra.broker import EmbeddedBroker
from app.infra.kafka_client import apply_topics
from app.infra.settings import Profile, Settings
from app.infra.worker_process import WorkerProcess

ROOT = Path(__file__).resolve().parents[1]
TEST_PARTITIONS = 4


@dataclass(frozen=True)
class Cluster:
    bootstrap_servers: str
    profile: Profile
    kind: str


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return (
            subprocess.run(
                ["docker", "info"], capture_output=True, timeout=10, check=False
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        profile = "local" if os.environ.get("OMNINODE_PROFILE") == "local" else "production"
        yield Cluster(configured, profile, "configured")
    elif _docker_answers():
        from testcontainers.community.kafka import KafkaContainer  # noqa: PLC0415 - needs Docker

        with KafkaContainer().with_kraft() as kafka:
            yield Cluster(kafka.get_bootstrap_server(), "production", "testcontainers")
    else:
        log = tmp_path_factory.mktemp("broker") / "tansu.log"
        with EmbeddedBroker(log_path=log) as broker:
            yield Cluster(broker.bootstrap_servers, "local", "embedded")


@dataclass
class Deployment:
    """One isolated OmniNode deployment on the session's broker, with its worker processes."""

    settings: Settings
    workdir: Path
    workers: list[WorkerProcess] = field(default_factory=list)

    def worker(self, name: str, **env: str) -> WorkerProcess:
        process = WorkerProcess(
            self.settings, self.workdir / f"{name}-data", self.workdir / f"{name}.log", env
        )
        self.workers.append(process.start())
        return process

    def run(self, coroutine):  # type: ignore[no-untyped-def]
        return asyncio.run(coroutine)

    def logs(self) -> str:
        return "\n".join(
            f"--- {w.log_path.name}\n{w.log_path.read_text(errors='replace')[-4000:]}"
            for w in self.workers
            if w.log_path.exists()
        )


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    """A bare topic outside any deployment's manifest (replication 1)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1)]
        )
    finally:
        await admin.close()


def make_deployment(cluster: Cluster, workdir: Path, rss_paths: tuple[str, ...]) -> Deployment:
    settings = Settings(
        bootstrap_servers=cluster.bootstrap_servers,
        profile=cluster.profile,
        partitions=TEST_PARTITIONS,
        replication=1,
        app_id=f"t{uuid.uuid4().hex[:10]}",
        rss_paths=rss_paths,
    )
    asyncio.run(apply_topics(settings, settings.manifest()))
    return Deployment(settings, workdir)


@pytest.fixture
def deployment(kafka_cluster: Cluster, tmp_path: Path) -> Iterator[Deployment]:
    deployed = make_deployment(kafka_cluster, tmp_path, (str(ROOT / "rss"),))
    yield deployed
    for worker in deployed.workers:
        worker.stop()
