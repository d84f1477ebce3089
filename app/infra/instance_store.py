"""What the snapshot table stores per instance: the snapshot and its unconfirmed outputs.

Kafka without transactions cannot write the snapshot, the journal record and the commands
atomically. So the step's outputs (the encoded journal record and commands) are stored in
the *same* table value as the snapshot: one RocksDB write and one changelog record. If the
snapshot survives a crash, so do its outputs, and a redelivery of the event that produced
them (recognised as a duplicate) sends them again. Outputs are dropped once the consumer
offset of their source record is committed, because Faust flushes the producer before it
commits, never before. ``OUTPUT_LIMIT`` unconfirmed outputs, or ``OUTPUT_BYTES`` of them,
make the reducer ask for a commit early, which keeps the stored value small for a hot
instance; an output larger than ``OUTPUT_BYTES`` on its own is never stored (the reducer
makes it durable before it writes the snapshot).
"""

from __future__ import annotations

import base64
import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from app.core.snapshot import Snapshot, dumps

OUTPUT_LIMIT = 32  # unconfirmed outputs of one instance that trigger an early commit
OUTPUT_BYTES = 64 * 1024  # ... or their encoded size that does
# The largest stored value written: a snapshot within OMNINODE_MAX_SNAPSHOT_BYTES with
# OUTPUT_BYTES of outputs is far below it; Kafka's default request limit is 1 MiB.
STORED_VALUE_BYTES = 900_000


@dataclass(frozen=True, slots=True)
class StepOutput:
    """The records one applied event produced, and where that event was read from."""

    event_id: str
    topic: str
    partition: int
    offset: int
    records: tuple[tuple[str, bytes], ...]  # (logical topic, value)
    # Its JSON text, made once: an output is re-stored with every later step of the instance.
    json_text: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.json_text:
            text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
            object.__setattr__(self, "json_text", text)

    @property
    def size(self) -> int:
        return len(self.json_text)

    @property
    def source(self) -> tuple[str, int, int]:
        return (self.topic, self.partition, self.offset)

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "source": [self.topic, self.partition, self.offset],
            "records": [[topic, base64.b64encode(value).decode()] for topic, value in self.records],
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> StepOutput:
        topic, partition, offset = raw["source"]
        records = tuple((t, base64.b64decode(v)) for t, v in raw["records"])
        return cls(raw["event_id"], topic, int(partition), int(offset), records)


@dataclass(frozen=True, slots=True)
class StoredInstance:
    snapshot: Snapshot
    outputs: tuple[StepOutput, ...] = ()

    def output_of(self, event_id: str) -> StepOutput | None:
        return next((o for o in self.outputs if o.event_id == event_id), None)


def encode_stored(stored: StoredInstance, snapshot_json: str | None = None) -> bytes:
    """The table value; ``snapshot_json``, when given, is the snapshot's canonical JSON."""
    snapshot = snapshot_json if snapshot_json is not None else dumps(stored.snapshot)
    outputs = ",".join(o.json_text for o in stored.outputs)
    return f'{{"outputs":[{outputs}],"snapshot":{snapshot}}}'.encode()


def decode_stored(data: bytes) -> StoredInstance:
    raw = json.loads(data)
    outputs = tuple(StepOutput.from_dict(o) for o in raw.get("outputs", ()))
    return StoredInstance(Snapshot.from_dict(raw["snapshot"]), outputs)


class DecodedCache:
    """Decoded values of the instances touched last, so a hot instance's stored value is
    not parsed again on every event; a hit needs the stored bytes to be equal."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._entries: OrderedDict[bytes, tuple[bytes, StoredInstance]] = OrderedDict()

    def decode(self, key: bytes, raw: bytes) -> StoredInstance:
        entry = self._entries.get(key)
        if entry is not None and entry[0] == raw:
            self._entries.move_to_end(key)
            return entry[1]
        stored = decode_stored(raw)
        self.remember(key, raw, stored)
        return stored

    def remember(self, key: bytes, raw: bytes, stored: StoredInstance) -> None:
        self._entries[key] = (raw, stored)
        self._entries.move_to_end(key)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)
