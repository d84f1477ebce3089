"""Projector agents: the instance read model and the per-state counts, from the journal.

The instance projector folds each journal record into the instance's view (records not
newer than the view are skipped, so redelivery is harmless), publishes the view to the
compacted ``omninode.projection.instances`` topic, and sends the +1/-1 changes to the
state counts, keyed by ``workflowType:state``, to a repartition topic. The counts projector
sums those changes per key and publishes each total to ``omninode.projection.state-counts``.
"""

from __future__ import annotations

import json
from collections.abc import MutableMapping

from app.infra import settings as topics
from app.infra.avro import codec
from app.infra.outbox import Outbox, Source, send_dead_letter
from app.infra.wire import INSTANCE_VIEW, STATE_COUNT, AvroDecodeError, decode_journal
from projectors.instances import InstanceView, project
from projectors.state_counts import deltas, split_key


class InstanceProjector:
    def __init__(self, views: MutableMapping[bytes, bytes], outbox: Outbox) -> None:
        self.views = views
        self.outbox = outbox

    async def handle(self, key: bytes | None, value: bytes | None, source: Source) -> None:
        try:
            record = decode_journal(value)
        except (AvroDecodeError, KeyError, TypeError) as exc:
            reason = f"undecodable journal record: {exc}"
            await send_dead_letter(self.outbox, reason, "decode", source, key, value)
            return
        view_key = record.key.encode()
        stored = self.views.get(view_key)
        before = InstanceView.from_record(json.loads(stored)) if stored else None
        after = project(before, record)
        if after is None:
            return
        self.views[view_key] = json.dumps(after.to_record()).encode()
        await self.outbox.send(
            topics.INSTANCE_VIEWS, view_key, codec(INSTANCE_VIEW).encode(after.to_record())
        )
        for state_key, change in deltas(before, after).items():
            workflow, state = split_key(state_key)
            delta = {"workflow_type": workflow, "state": state, "count": change}
            await self.outbox.send(
                topics.STATE_DELTAS, state_key.encode(), codec(STATE_COUNT).encode(delta)
            )


class CountsProjector:
    def __init__(self, counts: MutableMapping[bytes, bytes], outbox: Outbox) -> None:
        self.counts = counts
        self.outbox = outbox

    async def handle(self, key: bytes | None, value: bytes | None, source: Source) -> None:
        try:
            delta = codec(STATE_COUNT).decode(value)
        except AvroDecodeError as exc:
            reason = f"undecodable state delta: {exc}"
            await send_dead_letter(self.outbox, reason, "decode", source, key, value)
            return
        state_key = f"{delta['workflow_type']}:{delta['state']}".encode()
        total = int(self.counts.get(state_key, b"0")) + int(delta["count"])
        self.counts[state_key] = str(total).encode()
        record = {**delta, "count": total}
        await self.outbox.send(topics.STATE_COUNTS, state_key, codec(STATE_COUNT).encode(record))
