"""Kafka for the CLI and tests: topic plan/apply, produce, and reading a key or a topic.

Everything here uses aiokafka, whose default partitioner is Java Kafka's murmur2, the
same one the Faust workers use, so a key lands on (and is read from) the same partition
whoever produced it. Broker errors become :class:`KafkaUnavailable` with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from app.infra.end_offsets import EndOffsetProbeError, fetched_end_offsets
from app.infra.settings import Settings, TopicSpec

READ_IDLE_S = 1.0


class KafkaUnavailable(Exception):
    """The cluster could not be reached or refused the request."""


@dataclass(frozen=True, slots=True)
class TopicChange:
    topic: str
    action: str  # create | ok | differs
    detail: str


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner picks for ``key``."""
    every = list(range(partitions))
    return int(DefaultPartitioner()(key, every, every))


async def _admin(settings: Settings) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(**settings.aiokafka_options())
    await admin.start()
    return admin


async def plan_topics(settings: Settings, manifest: dict[str, TopicSpec]) -> list[TopicChange]:
    """What ``apply`` would do: topics to create, and existing ones whose layout differs."""
    try:
        admin = await _admin(settings)
        try:
            existing = await _partition_counts(admin, [spec.name for spec in manifest.values()])
        finally:
            await admin.close()
    except KafkaError as exc:
        raise KafkaUnavailable(f"{settings.bootstrap_servers}: {exc}") from exc
    changes = []
    for spec in manifest.values():
        name = spec.name
        have = existing.get(name)
        if have is None:
            detail = (
                f"{spec.partitions} partitions, {spec.cleanup_policy}, retention {spec.retention}"
            )
            changes.append(TopicChange(name, "create", detail))
        elif have != spec.partitions:
            detail = (
                f"has {have} partitions, manifest says {spec.partitions}; not changed "
                "automatically (it would move keys between partitions)"
            )
            changes.append(TopicChange(name, "differs", detail))
        else:
            changes.append(TopicChange(name, "ok", f"{have} partitions"))
    return changes


async def _partition_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    listed = set(await admin.list_topics())
    wanted = [name for name in names if name in listed]
    if not wanted:
        return {}
    described = await admin.describe_topics(wanted)
    return {d["topic"]: len(d["partitions"]) for d in described if not d.get("error_code")}


async def apply_topics(settings: Settings, manifest: dict[str, TopicSpec]) -> list[TopicChange]:
    """Create the manifest's missing topics; running it twice changes nothing."""
    changes = await plan_topics(settings, manifest)
    by_name = {spec.name: spec for spec in manifest.values()}
    missing = [by_name[c.topic] for c in changes if c.action == "create"]
    if missing:
        try:
            admin = await _admin(settings)
            try:
                brokers = len((await admin.describe_cluster())["brokers"])
                await admin.create_topics([_new_topic(spec, brokers) for spec in missing])
            finally:
                await admin.close()
        except KafkaError as exc:
            raise KafkaUnavailable(f"creating topics: {exc}") from exc
    return changes


def _new_topic(spec: TopicSpec, brokers: int) -> NewTopic:
    configs = {"cleanup.policy": spec.cleanup_policy, "retention.ms": str(spec.retention_ms)}
    return NewTopic(
        spec.name, spec.partitions, max(1, min(spec.replication, brokers)), None, configs
    )


async def produce(settings: Settings, records: Sequence[tuple[str, bytes, bytes]]) -> None:
    """Send records (topic, key, value) and wait until the broker has them all."""
    producer = AIOKafkaProducer(**settings.aiokafka_options(), acks="all", linger_ms=0)
    try:
        await producer.start()
        futures = [await producer.send(topic, value, key=key) for topic, key, value in records]
        await asyncio.gather(*futures)
    except KafkaError as exc:
        raise KafkaUnavailable(f"{settings.bootstrap_servers}: {exc}") from exc
    finally:
        await producer.stop()


async def read_key(settings: Settings, topic: str, key: bytes) -> list[Record]:
    """Every record of ``key`` in ``topic`` (from its one partition), oldest first."""
    return await _read(settings, topic, key)


async def read_topic(settings: Settings, topic: str) -> list[Record]:
    """Every record of ``topic``, partition by partition."""
    return await _read(settings, topic, None)


async def _read(settings: Settings, topic: str, key: bytes | None) -> list[Record]:
    consumer = AIOKafkaConsumer(**settings.consumer_options(), enable_auto_commit=False)
    try:
        await consumer.start()
        # A started consumer knows every topic that existed when it connected.
        partitions = set(consumer.partitions_for_topic(topic) or ())
        if key is not None and partitions:
            partitions = {partition_for(key, len(partitions))}
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        records = await _drain(consumer, tps, await _end_offsets(settings, consumer, tps))
    except (KafkaError, EndOffsetProbeError) as exc:
        raise KafkaUnavailable(f"{settings.bootstrap_servers}: {exc}") from exc
    finally:
        with contextlib.suppress(asyncio.CancelledError, KafkaError):
            await consumer.stop()
    return [r for r in records if key is None or r.key == key]


async def _end_offsets(
    settings: Settings, consumer: AIOKafkaConsumer, tps: list[TopicPartition]
) -> dict[TopicPartition, int]:
    if settings.is_local:
        # The embedded broker's ListOffsets is wrong for multi-record batches.
        return await fetched_end_offsets(consumer, tps)
    ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
    return ends


async def _drain(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], ends: dict[TopicPartition, int]
) -> list[Record]:
    """Read the partitions from the beginning up to the given end offsets."""
    if not tps:
        return []
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    pending = {tp for tp in tps if ends.get(tp, 0) > 0}
    records: list[Record] = []
    while pending:
        batch: dict[Any, list[Any]] = await consumer.getmany(
            *pending, timeout_ms=int(READ_IDLE_S * 1000)
        )
        if not batch:
            break  # nothing more arrived: the end offset may be stale
        for tp, messages in batch.items():
            records.extend(Record(m.topic, m.partition, m.offset, m.key, m.value) for m in messages)
            if await consumer.position(tp) >= ends[tp]:
                pending.discard(tp)
    return records
