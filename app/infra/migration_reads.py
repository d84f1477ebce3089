"""What ``omninode migrate`` reads from Kafka: every snapshot of a workflow (the snapshot
table's changelog, latest record per key), their journals (the journal topic, read once),
and, after ``apply`` sent its ``$migrate`` events, each instance's outcome.

A record that does not decode is left out and named in ``unreadable`` (the CLI says so on
stderr): one bad record must not hide every other instance. A journal left incomplete that
way shows in the plan as a missing seq.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Literal

from app.core.snapshot import Snapshot
from app.infra import topics
from app.infra.instance_store import decode_stored
from app.infra.kafka_client import Record, read_topic
from app.infra.kafka_journal import by_instance, read_journal
from app.infra.settings import Settings
from app.infra.wire import AvroDecodeError, decode_journal
from app.spi.envelopes import Event, JournalRecord, instance_key

POLL_S = 0.5


@dataclass
class InstanceReads:
    """Snapshots by instance key, journals by instance key, and what did not decode."""

    snapshots: dict[str, Snapshot] = field(default_factory=dict)
    journals: dict[str, list[JournalRecord]] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)


async def read_workflow_snapshots(settings: Settings, workflow: str) -> InstanceReads:
    """The latest snapshot of every instance of ``workflow`` (a deleted one has none)."""
    topic = settings.changelog_topic(topics.SNAPSHOT_TABLE)
    latest: dict[str, Record] = {}
    prefix = f"{workflow}:".encode()
    for record in await read_topic(settings, topic):
        if record.key is not None and record.key.startswith(prefix):
            latest[record.key.decode("utf-8", "replace")] = record
    reads = InstanceReads()
    for key, record in sorted(latest.items()):
        if record.value is None:  # a tombstone: the instance was deleted
            continue
        try:
            snapshot = decode_stored(record.value).snapshot
        except (ValueError, KeyError, TypeError) as exc:
            reads.unreadable.append(f"{_where(record)} ({key}): {type(exc).__name__}: {exc}")
            continue
        if snapshot.workflow == workflow:
            reads.snapshots[instance_key(snapshot.workflow, snapshot.instance_id)] = snapshot
    return reads


async def read_journals(settings: Settings, keys: Collection[str], reads: InstanceReads) -> None:
    """Fill ``reads.journals`` with the journal of each of ``keys``, in seq order, each seq
    once (a redelivered event may re-emit a record): one read of the journal topic."""
    wanted = {key.encode() for key in keys}
    decoded: list[JournalRecord] = []
    for record in await read_topic(settings, settings.topic(topics.JOURNAL)):
        if record.key not in wanted:
            continue
        try:
            decoded.append(decode_journal(record.value))
        except AvroDecodeError as exc:
            reads.unreadable.append(f"{_where(record)}: {exc}")
    grouped = by_instance(decoded)
    reads.journals = {key: grouped.get(key, []) for key in keys}


def _where(record: Record) -> str:
    return f"{record.topic}@{record.partition}:{record.offset}"


Outcome = Literal["migrated", "ignored", "waiting"]


@dataclass(frozen=True, slots=True)
class Progress:
    """Where one sent ``$migrate`` stands: the instance's last snapshot seen, and the reason
    from its journal when the migration was ignored."""

    event: Event
    outcome: Outcome
    snapshot: Snapshot | None = None
    reason: str | None = None


async def watch_migrations(
    settings: Settings,
    sent: Mapping[str, Event],
    target: int,
    timeout_s: float,
    report: Callable[[list[Progress]], None],
) -> list[Progress]:
    """Poll the snapshots until every instance in ``sent`` (by key) runs on ``target`` or has
    the ``$migrate`` ignored, or ``timeout_s`` passed; ``report`` sees each round's state."""
    workflows = {event.workflow_type for event in sent.values()}
    deadline = time.monotonic() + timeout_s
    progress = [Progress(event, "waiting") for event in sent.values()]
    while True:
        seen: dict[str, Snapshot] = {}
        for workflow in sorted(workflows):
            seen.update((await read_workflow_snapshots(settings, workflow)).snapshots)
        progress = [_progress(p.event, seen.get(p.event.key), target) for p in progress]
        report(progress)
        if all(p.outcome != "waiting" for p in progress) or time.monotonic() >= deadline:
            break
        await asyncio.sleep(POLL_S)
    return [await _with_reason(settings, p) for p in progress]


def _progress(event: Event, snapshot: Snapshot | None, target: int) -> Progress:
    if snapshot is not None and snapshot.version == target:
        return Progress(event, "migrated", snapshot)
    if snapshot is not None and event.event_id in snapshot.recent_event_ids:
        return Progress(event, "ignored", snapshot)
    return Progress(event, "waiting", snapshot)


async def _with_reason(settings: Settings, progress: Progress) -> Progress:
    """An ignored migration with the reason its journal record gives."""
    if progress.outcome != "ignored":
        return progress
    records = await read_journal(settings, progress.event.key)
    found = next((r for r in records if r.event.event_id == progress.event.event_id), None)
    reason = found.reason if found is not None else None
    return Progress(progress.event, "ignored", progress.snapshot, reason or "no reason recorded")
