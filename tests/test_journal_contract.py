"""One contract for the Journal port, run against every adapter: in memory and on Kafka."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest

from app.core.memory import InMemoryJournal
from app.infra import topics
from app.infra.kafka_client import apply_topics
from app.infra.kafka_journal import KafkaJournal
from app.infra.settings import Settings
from app.infra.wire import encode_journal
from app.spi.envelopes import Event, JournalRecord
from app.spi.errors import ConcurrencyConflict, StoreUnavailable
from app.spi.ports import Journal
from tests.conftest import Cluster


def record(instance: str, seq: int, ignored: bool = False) -> JournalRecord:
    event = Event(
        "w",
        instance,
        "$start" if seq == 1 else "GO",
        f"{instance}-e{seq}",
        f"2026-01-01T00:00:0{seq}Z",
        {"n": seq},
    )
    return JournalRecord(seq, event, ignored, "active", 1, ("a",), None)


def _journal_deployment(cluster: Cluster) -> Settings:
    """Settings of a fresh deployment (its own topics) on the session's broker."""
    settings = Settings(
        bootstrap_servers=cluster.bootstrap_servers,
        profile=cluster.profile,
        partitions=2,
        replication=1,
        app_id=f"j{uuid.uuid4().hex[:8]}",
    )
    asyncio.run(apply_topics(settings, settings.manifest()))
    return settings


@pytest.fixture(params=["memory", "kafka"])
def journal(request: pytest.FixtureRequest) -> Iterator[Journal]:
    if request.param == "memory":
        yield InMemoryJournal()
        return
    cluster: Cluster = request.getfixturevalue("kafka_cluster")
    yield KafkaJournal(_journal_deployment(cluster))


def test_appended_records_read_back_in_seq_order(journal: Journal) -> None:
    journal.append([record("a", 1), record("a", 2, ignored=True)])
    journal.append([record("b", 1)])
    journal.append([record("a", 3)])
    assert journal.read("w:a") == [record("a", 1), record("a", 2, ignored=True), record("a", 3)]
    assert journal.read("w:a", after_seq=2) == [record("a", 3)]
    assert journal.read("w:b") == [record("b", 1)]
    assert journal.read("w:nobody") == []
    assert list(journal.keys()) == ["w:a", "w:b"]


def test_a_taken_seq_is_a_concurrency_conflict(journal: Journal) -> None:
    journal.append([record("a", 1), record("a", 2)])
    with pytest.raises(ConcurrencyConflict, match="seq 2 appended where 3 is next"):
        journal.append([replace(record("a", 2), ignored=True)])
    assert journal.read("w:a") == [record("a", 1), record("a", 2)]


def test_a_gap_is_a_concurrency_conflict_and_nothing_is_appended(journal: Journal) -> None:
    journal.append([record("a", 1)])
    with pytest.raises(ConcurrencyConflict, match="seq 3 appended where 2 is next"):
        journal.append([record("b", 1), record("a", 3)])
    assert journal.read("w:b") == []


def test_kafka_reads_deduplicate_a_re_emitted_record(kafka_cluster: Cluster) -> None:
    settings = _journal_deployment(kafka_cluster)
    journal = KafkaJournal(settings)
    journal.append([record("a", 1), record("a", 2)])
    from app.infra.kafka_client import produce  # noqa: PLC0415

    # What a redelivered inbound event does after a crash: the same record, written again.
    topic = settings.topic(topics.JOURNAL)
    asyncio.run(produce(settings, [(topic, b"w:a", encode_journal(record("a", 2)))]))
    assert journal.read("w:a") == [record("a", 1), record("a", 2)]


def test_an_unreachable_cluster_is_store_unavailable() -> None:
    journal = KafkaJournal(Settings(bootstrap_servers="127.0.0.1:1", profile="local"))
    with pytest.raises(StoreUnavailable):
        journal.read("w:a")
