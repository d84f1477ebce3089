"""The topics of a deployment: the manifest (``topics/omninode.yaml``) and the logical names
the runtime uses. A deployment's real topic names are these prefixed with its app id
(``Settings.topic``); ``omninode topics plan|apply`` create them from the manifest.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from app.core.durations import parse_duration_ms
from app.spi.envelopes import DEFAULT_QUEUE

MANIFEST = Path(__file__).resolve().parents[2] / "topics" / "omninode.yaml"


class ManifestError(ValueError):
    """The topic manifest cannot be read or says something the runtime cannot use."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    replication: int
    cleanup_policy: str
    retention: str
    key: str
    value_schema: str
    purpose: str

    @property
    def retention_ms(self) -> int:
        if self.retention == "forever":
            return -1
        try:
            return parse_duration_ms(self.retention)
        except ValueError as exc:
            raise ManifestError(f"topic {self.name}: bad retention: {exc}") from exc


def load_manifest(
    path: Path = MANIFEST,
    partitions: int | None = None,
    namespace: str = "omninode",
    replication: int | None = None,
    queues: Iterable[str] = (DEFAULT_QUEUE,),
) -> dict[str, TopicSpec]:
    """The manifest by logical name (``omninode.events``); each spec's ``name`` is the real
    topic, prefixed with ``namespace``. ``partitions``/``replication`` override the file;
    an entry whose name holds ``{queue}`` stands for one topic per queue of ``queues``."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        defaults = raw.get("defaults", {})
        specs = {}
        for entry in raw["topics"]:
            merged = {**defaults, **entry}
            for filled in _per_queue(merged, queues):
                specs[filled["name"]] = TopicSpec(
                    name=namespace + filled["name"].removeprefix("omninode"),
                    partitions=partitions or int(filled["partitions"]),
                    replication=replication or int(filled["replication"]),
                    cleanup_policy=filled.get("cleanup_policy", "delete"),
                    retention=str(filled.get("retention", "7d")),
                    key=filled.get("key", ""),
                    value_schema=filled["value_schema"],
                    purpose=filled.get("purpose", ""),
                )
    except (OSError, KeyError, TypeError, AttributeError, ValueError, yaml.YAMLError) as exc:
        raise ManifestError(f"{path}: invalid topic manifest: {exc}") from exc
    return specs


def _per_queue(entry: dict[str, Any], queues: Iterable[str]) -> list[dict[str, Any]]:
    if QUEUE_PLACEHOLDER not in entry["name"]:
        return [entry]
    return [
        {
            **entry,
            "name": entry["name"].replace(QUEUE_PLACEHOLDER, queue),
            "purpose": str(entry.get("purpose", "")).replace(QUEUE_PLACEHOLDER, queue),
        }
        for queue in sorted(set(queues))
    ]


def command_topic(queue: str) -> str:
    """The logical name of a task queue's command topic."""
    return COMMANDS_PREFIX + queue


# Topic names the runtime uses; the manifest must define each of them.
EVENTS = "omninode.events"
RESULTS = "omninode.results"
JOURNAL = "omninode.journal"
COMMANDS_PREFIX = "omninode.commands."  # + the task queue: command_topic(queue)
QUEUE_PLACEHOLDER = "{queue}"
DEFAULT_COMMANDS = COMMANDS_PREFIX + DEFAULT_QUEUE
# Before task queues, commands went to one topic per kind. An output stored then (and
# re-sent on redelivery) names one of them: it goes to the default queue now.
LEGACY_NAMES = {
    "omninode.commands.effect": DEFAULT_COMMANDS,
    "omninode.commands.compute": DEFAULT_COMMANDS,
}
DEAD_LETTERS = "omninode.deadletters"
INSTANCE_VIEWS = "omninode.projection.instances"
STATE_DELTAS = "omninode.projection.state-deltas"
STATE_COUNTS = "omninode.projection.state-counts"
SNAPSHOT_TABLE = "snapshots"
TIMER_TABLE = "timers"
# Every table the workers keep (Faust names their changelogs <app id>-<table>-changelog),
# with the role that keeps it.
TABLES = (
    (SNAPSHOT_TABLE, "reducer", "every instance's snapshot (the changelog is the snapshot store)"),
    (TIMER_TABLE, "reducer", "armed timers by instance"),
    ("instance-views", "projector", "the instance read model, before it is published"),
    ("state-counts", "projector", "instances per state, before they are published"),
    ("journal-index", "projector", "journal records by instance and seq (the API's history)"),
    ("processed-commands", "effects/computes", "answers of commands already run, by command id"),
)
