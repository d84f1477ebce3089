"""Inputs that once took a worker down, against a real broker and worker processes: a hot
instance fed large events, a record over every size limit, handler results that cannot be
sent. The worker stays up, what breaks a limit is dead-lettered or answered as
``<name>.failed``, and everything after it proceeds; a restart does not meet it again."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from app.infra import topics
from app.infra.control import new_event, read_history, send_events, wait_for
from app.infra.kafka_client import read_topic
from app.infra.settings import Settings
from app.infra.wire import decode_dead_letter, encode_event
from tests.conftest import Cluster, Deployment, make_deployment

pytestmark = pytest.mark.kafka

PINGER = """
    rss: 1
    workflow: pinger
    version: 1
    data: {pings: 0}
    initial: idle
    states:
      idle:
        on:
          PING: {assign: {pings: "data.pings + 1"}}
"""
RESULTS = """
    rss: 1
    workflow: results
    version: 1
    initial: calling
    states:
      calling:
        entry:
          effects:
            - {name: returns_a_set, timeout: 5s, retry: {max_attempts: 1}}
            - {name: returns_10_mb, timeout: 5s, retry: {max_attempts: 1}}
        on:
          returns_a_set.failed: {assign: {set_failed: "event.payload.error"}}
          returns_10_mb.failed: {assign: {big_failed: "event.payload.error"}}
"""
HANDLERS = """
from app.core.handlers import effect

@effect("returns_a_set")
async def returns_a_set(input, ctx):
    return {"values": {1, 2}}

@effect("returns_10_mb")
async def returns_10_mb(input, ctx):
    return {"blob": "x" * 10_000_000}
"""


def charts(tmp_path: Path) -> Path:
    folder = tmp_path / "charts"
    folder.mkdir()
    (folder / "pinger.yaml").write_text(textwrap.dedent(PINGER))
    (folder / "results.yaml").write_text(textwrap.dedent(RESULTS))
    (folder / "handlers.py").write_text(HANDLERS)
    return folder


@pytest.fixture
def limited(kafka_cluster: Cluster, tmp_path: Path) -> Deployment:
    deployed = make_deployment(kafka_cluster, tmp_path, (str(charts(tmp_path)),))
    yield deployed  # type: ignore[misc]
    for worker in deployed.workers:
        worker.stop()


def pings(count: int, size: int, first: int = 1) -> list:
    return [
        new_event("pinger", "hot", "PING", {"blob": "x" * size}, f"p{n}")
        for n in range(first, first + count)
    ]


async def dead_letters(settings: Settings) -> list[dict]:
    records = await read_topic(settings, settings.topic(topics.DEAD_LETTERS))
    return [decode_dead_letter(r.value) for r in records]


async def produce_raw(settings: Settings, key: bytes, value: bytes) -> None:
    """A producer that is not ours, with a request limit far above the workers' limits."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, max_request_size=8 * 1024 * 1024
    )
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic(topics.EVENTS), value, key=key)
    finally:
        await producer.stop()


def test_a_hot_instance_fed_large_events_does_not_take_its_worker_down(
    limited: Deployment,
) -> None:
    worker = limited.worker("w1")
    worker.wait_ready()
    settings = limited.settings
    start = new_event("pinger", "hot", "$start", {}, "start")
    limited.run(send_events(settings, [start, *pings(40, 60_000)]))
    final = limited.run(wait_for(settings, "pinger", "hot", lambda s: s.data["pings"] == 40, 90))
    assert final.seq == 41, limited.logs()
    assert worker.process is not None and worker.process.poll() is None, limited.logs()
    history = limited.run(read_history(settings, "pinger", "hot"))
    assert [r.seq for r in history] == list(range(1, 42))


def test_a_record_over_every_limit_is_dead_lettered_once_and_the_partition_moves_on(
    limited: Deployment,
) -> None:
    settings = limited.settings
    worker = limited.worker("w1")
    worker.wait_ready()
    start = new_event("pinger", "hot", "$start", {}, "start")
    limited.run(send_events(settings, [start]))
    poison = encode_event(new_event("pinger", "hot", "PING", {"blob": "x" * 5_000_000}, "big"))
    limited.run(produce_raw(settings, b"pinger:hot", poison))  # same key, same partition
    limited.run(send_events(settings, pings(3, 10)))
    limited.run(wait_for(settings, "pinger", "hot", lambda s: s.data["pings"] == 3, 60))
    [letter] = limited.run(dead_letters(settings))
    assert letter["stage"] == "decode" and "OMNINODE_MAX_EVENT_BYTES" in letter["reason"]
    assert letter["value_truncated"] and letter["value_size"] == len(poison)
    assert (letter["workflow_type"], letter["instance_id"]) == ("pinger", "hot")
    # A restarted worker does not meet the poison record again, and goes on.
    worker.stop()
    limited.worker("w1-again").wait_ready()
    limited.run(send_events(settings, pings(2, 10, first=10)))
    limited.run(wait_for(settings, "pinger", "hot", lambda s: s.data["pings"] == 5, 60))
    assert len(limited.run(dead_letters(settings))) == 1, limited.logs()


def test_handler_results_that_cannot_be_sent_answer_failed_and_the_instance_moves_on(
    limited: Deployment,
) -> None:
    settings = limited.settings
    worker = limited.worker("w1")
    worker.wait_ready()
    limited.run(send_events(settings, [new_event("results", "r1", "$start", {}, "s")]))

    def both_failed(snapshot) -> bool:  # type: ignore[no-untyped-def]
        return "set_failed" in snapshot.data and "big_failed" in snapshot.data

    final = limited.run(wait_for(settings, "results", "r1", both_failed, 60))
    assert "set" in final.data["set_failed"]
    assert "OMNINODE_MAX_RESULT_BYTES" in final.data["big_failed"]
    assert worker.process is not None and worker.process.poll() is None, limited.logs()
    assert limited.run(dead_letters(settings)) == []
