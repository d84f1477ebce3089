"""Kafka for the CLI and tests: topic plan/apply, produce, and reading a key or a topic.

Everything here uses aiokafka, whose default partitioner is Java Kafka's murmur2, the
same one the Faust workers use, so a key lands on (and is read from) the same partition
whoever produced it. Broker errors become :class:`KafkaUnavailable` with the reason.

A read takes each partition's end offset when it starts and reads up to it, however long
the broker pauses between fetches, within :data:`READ_TIMEOUT_S` in all; a read that cannot
get there is a :class:`ReadIncomplete` naming the partition, how far it got and the end,
never a silently shorter (older) answer. Each partition read is logged at DEBUG on
:data:`log` (``omninode status --verbose`` shows those lines).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from app.infra.end_offsets import EndOffsetProbeError, fetched_end_offsets
from app.infra.settings import Settings, SettingsError
from app.infra.topics import TopicSpec

READ_TIMEOUT_S = 60.0  # the longest a read may take, connecting included
READ_POLL_S = 1.0  # one fetch's wait; an empty one only means "not yet"
log = logging.getLogger(__name__)
_HOST = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9._-]*[A-Za-z0-9_])?$")


class KafkaUnavailable(Exception):
    """The cluster could not be reached or refused the request."""


class ReadIncomplete(KafkaUnavailable):
    """A read did not reach a partition's end offset in the time allowed."""


@dataclass(frozen=True, slots=True)
class PartitionRead:
    """How one partition was read: from ``first`` to ``position`` (the end was ``end``)."""

    topic: str
    partition: int
    first: int
    end: int
    position: int
    records: int
    seconds: float


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


def check_bootstrap_servers(servers: str) -> None:
    """``host:port[,host:port...]`` (a port may be left out: 9092; IPv6 in brackets), checked
    before connecting, so a typo is a SettingsError that says so, not a parsing traceback."""
    entries = [entry.strip() for entry in servers.split(",")]
    if not servers.strip() or not all(entries) or not all(map(_host_port, entries)):
        raise SettingsError(f"KAFKA_BOOTSTRAP_SERVERS: {servers!r} is not host:port[,host:port...]")


def _host_port(entry: str) -> bool:
    if entry.startswith("["):
        address, _, rest = entry[1:].partition("]")
        port = rest.removeprefix(":") if rest.startswith(":") else (None if rest else "9092")
        return _is_ip(address, 6) and port is not None and _is_port(port)
    if _is_ip(entry, 6):
        return True
    host, colon, port = entry.rpartition(":")
    if not colon:
        host, port = entry, "9092"
    return bool(_HOST.match(host)) and _is_port(port)


def _is_ip(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


def _is_port(text: str) -> bool:
    return text.isascii() and text.isdigit() and 0 < int(text) < 65536


async def _admin(settings: Settings) -> AIOKafkaAdminClient:
    check_bootstrap_servers(settings.bootstrap_servers)
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
    check_bootstrap_servers(settings.bootstrap_servers)
    producer = AIOKafkaProducer(**settings.aiokafka_options(), acks="all", linger_ms=0)
    try:
        await producer.start()
        futures = [await producer.send(topic, value, key=key) for topic, key, value in records]
        await asyncio.gather(*futures)
    except KafkaError as exc:
        raise KafkaUnavailable(f"{settings.bootstrap_servers}: {exc}") from exc
    finally:
        await producer.stop()


async def read_key(
    settings: Settings, topic: str, key: bytes, timeout_s: float = READ_TIMEOUT_S
) -> list[Record]:
    """Every record of ``key`` in ``topic`` (from its one partition), oldest first."""
    return await _read(settings, topic, key, timeout_s)


async def read_topic(
    settings: Settings, topic: str, timeout_s: float = READ_TIMEOUT_S
) -> list[Record]:
    """Every record of ``topic``, partition by partition."""
    return await _read(settings, topic, None, timeout_s)


async def _read(
    settings: Settings, topic: str, key: bytes | None, timeout_s: float
) -> list[Record]:
    check_bootstrap_servers(settings.bootstrap_servers)
    started = time.monotonic()
    deadline = started + timeout_s
    consumer = AIOKafkaConsumer(**settings.consumer_options(), enable_auto_commit=False)
    try:
        await consumer.start()
        # A started consumer knows every topic that existed when it connected.
        partitions = set(consumer.partitions_for_topic(topic) or ())
        if key is not None and partitions:
            partitions = {partition_for(key, len(partitions))}
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        ends = await _end_offsets(settings, consumer, tps)
        records, reads = await _drain(consumer, tps, ends, deadline, settings.bootstrap_servers)
    except (KafkaError, EndOffsetProbeError) as exc:
        raise KafkaUnavailable(f"{settings.bootstrap_servers}: {exc}") from exc
    finally:
        with contextlib.suppress(asyncio.CancelledError, KafkaError):
            await consumer.stop()
    found = [r for r in records if key is None or r.key == key]
    if not tps:
        log.debug(
            "read %s: no such topic (or no partitions) on %s", topic, settings.bootstrap_servers
        )
    for read in reads:
        matched = sum(1 for r in found if r.partition == read.partition)
        log.debug(
            "read %s partition %d: from offset %d to %d (its end offset was %d when the read "
            "started): %d records%s in %.2fs (%.2fs with connecting)",
            read.topic,
            read.partition,
            read.first,
            read.position,
            read.end,
            read.records,
            f", {matched} with key {key.decode('utf-8', 'replace')}" if key is not None else "",
            read.seconds,
            time.monotonic() - started,
        )
    return found


async def _end_offsets(
    settings: Settings, consumer: AIOKafkaConsumer, tps: list[TopicPartition]
) -> dict[TopicPartition, int]:
    if settings.is_local:
        # The embedded broker's ListOffsets is wrong for multi-record batches.
        return await fetched_end_offsets(consumer, tps)
    ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
    return ends


async def _drain(
    consumer: AIOKafkaConsumer,
    tps: list[TopicPartition],
    ends: dict[TopicPartition, int],
    deadline: float,
    cluster: str,
) -> tuple[list[Record], list[PartitionRead]]:
    """Read the partitions from the beginning up to the given end offsets (taken when the
    read started), however long a fetch comes back empty; past ``deadline`` (monotonic
    seconds), raise ReadIncomplete instead of answering with part of a partition."""
    if not tps:
        return [], []
    started = time.monotonic()
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    first = {tp: await consumer.position(tp) for tp in tps}
    counts = dict.fromkeys(tps, 0)
    pending = {tp for tp in tps if first[tp] < ends.get(tp, 0)}
    records: list[Record] = []
    while pending:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise await _incomplete(consumer, pending, first, ends, started, cluster)
        batch: dict[Any, list[Any]] = await consumer.getmany(
            *pending, timeout_ms=max(1, int(min(READ_POLL_S, remaining) * 1000))
        )
        for tp, messages in batch.items():
            counts[tp] += len(messages)
            records.extend(Record(m.topic, m.partition, m.offset, m.key, m.value) for m in messages)
        # Positions, not records: compaction gaps and transaction markers move them too.
        for tp in list(pending):
            if await consumer.position(tp) >= ends[tp]:
                pending.discard(tp)
    seconds = time.monotonic() - started
    reads = [
        PartitionRead(
            tp.topic,
            tp.partition,
            first[tp],
            ends.get(tp, 0),
            await consumer.position(tp),
            counts[tp],
            seconds,
        )
        for tp in tps
    ]
    return records, reads


async def _incomplete(
    consumer: AIOKafkaConsumer,
    pending: set[TopicPartition],
    first: dict[TopicPartition, int],
    ends: dict[TopicPartition, int],
    started: float,
    cluster: str,
) -> ReadIncomplete:
    parts = []
    for tp in sorted(pending):
        position = await consumer.position(tp)
        parts.append(
            f"{tp.topic} partition {tp.partition} read from offset {first[tp]} to {position} "
            f"of end offset {ends[tp]}"
        )
    return ReadIncomplete(
        f"{cluster}: {'; '.join(parts)} after {time.monotonic() - started:.1f}s; "
        "gave up rather than answer from part of it (is the cluster slow or overloaded?)"
    )
