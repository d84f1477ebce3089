"""The topics of a deployment: the manifest (``topics/omninode.yaml``) and the logical names
the runtime uses. A deployment's real topic names are these prefixed with its app id
(``Settings.topic``); ``omninode topics plan|apply`` create them from the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from app.core.durations import parse_duration_ms

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
) -> dict[str, TopicSpec]:
    """The manifest by logical name (``omninode.events``); each spec's ``name`` is the real
    topic, prefixed with ``namespace``. ``partitions``/``replication`` override the file."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        defaults = raw.get("defaults", {})
        specs = {}
        for entry in raw["topics"]:
            merged = {**defaults, **entry}
            specs[merged["name"]] = TopicSpec(
                name=namespace + merged["name"].removeprefix("omninode"),
                partitions=partitions or int(merged["partitions"]),
                replication=replication or int(merged["replication"]),
                cleanup_policy=merged.get("cleanup_policy", "delete"),
                retention=str(merged.get("retention", "7d")),
                key=merged.get("key", ""),
                value_schema=merged["value_schema"],
                purpose=merged.get("purpose", ""),
            )
    except (OSError, KeyError, TypeError, AttributeError, ValueError, yaml.YAMLError) as exc:
        raise ManifestError(f"{path}: invalid topic manifest: {exc}") from exc
    return specs


# Topic names the runtime uses; the manifest must define each of them.
EVENTS = "omninode.events"
RESULTS = "omninode.results"
JOURNAL = "omninode.journal"
EFFECT_COMMANDS = "omninode.commands.effect"
COMPUTE_COMMANDS = "omninode.commands.compute"
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
    ("processed-effects", "effects", "answers of effects already run, by command id"),
    ("processed-computes", "computes", "answers of computes already run, by command id"),
)
